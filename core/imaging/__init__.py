"""Pictures in and out: decoding and checking photos (:mod:`.images`), drawing maps (:mod:`.render`) and
the ImageNet class names (:mod:`.labels`)."""
