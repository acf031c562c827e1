"""The library's parts as ``python -m core --help`` lists them."""

LAYOUT = """the library behind these commands (core/, no Streamlit):
  core.models    the model registry; Lite0, the Keras zoo, VGG16; BatchNorm folding; weights held in NumPy
  core.engine    the compiled pass (every layer's activations and gradients), its result cache, the pool
  core.cam       the methods (one registry entry each), occlusion, the explain use case
  core.imaging   photos in (decode, check), maps out (upsample, colormap, overlay), ImageNet labels
  core.training  your own classes: datasets, cached features, the cross-validated head, fine-tuning, the stamp
  core.metrics   localisation, faithfulness, sanity (cascading randomisation), dataset evaluation
  core.lessons   lesson files (TOML) checked, the exercises' computed answers and checks
  core.store     the workshop database: rooms, participants, answers (SQLite by default, any SQLAlchemy URL)
  core.live      the live view: the newest-frame slot and one worker per viewer
  core.view      a view as a link (the app's URL)
  core.safetext  names from elsewhere made safe to print (control characters escaped)
  core.compat    every private TensorFlow/Keras/libc call, probed once, with a public path
  core.cli       these commands (`bench` hands over to the benchmark: bench/, outside the library)"""
