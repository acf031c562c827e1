"""The explanation methods: what a method is (:mod:`.interface`: a function of one context, registered once with
what it needs), every method and its registry entry (:mod:`.methods`), occlusion's masks, fills and sensitivity
(:mod:`.occlusion`) and the explain use case shared by the CLI and the pages (:mod:`.explain`)."""
