"""The explanation methods: the CAM family over one cached pass (:mod:`.methods`, one registry entry per
method), occlusion (:mod:`.occlusion`: masks, fills, sensitivity) and the explain use case shared by the
CLI and the pages (:mod:`.explain`)."""
