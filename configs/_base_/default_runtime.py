# Runtime shared by every config of gradmix_plugin (mmpretrain style).
# Importing the plugin registers its components into mmpretrain's
# registries.
custom_imports = dict(imports=['gradmix_plugin'], allow_failed_imports=False)

default_scope = 'mmpretrain'

# The plugin's runner: config rules (osr_split, data_root), provenance,
# exact resume, the osr_metrics.json report, whatever tool starts it
# (the plugin's, mmpretrain's, or RUNNERS.build(cfg) in Python).
runner_type = 'OSRRunner'

default_hooks = dict(
    timer=dict(type='IterTimerHook'),
    logger=dict(type='LoggerHook', interval=50),
    param_scheduler=dict(type='ParamSchedulerHook'),
    checkpoint=dict(type='CheckpointHook', interval=10, max_keep_ckpts=3),
    sampler_seed=dict(type='DistSamplerSeedHook'),
    visualization=dict(type='VisualizationHook', enable=False),
    # Checkpoints carry the global random states, so --resume is exact.
    rng_state=dict(type='RNGStateHook'),
)

env_cfg = dict(
    cudnn_benchmark=False,
    mp_cfg=dict(mp_start_method='fork', opencv_num_threads=0),
    # tools/train.py switches to gloo for multi-process runs without CUDA.
    dist_cfg=dict(backend='nccl'),
)

log_processor = dict(window_size=10)

vis_backends = [dict(type='LocalVisBackend')]
visualizer = dict(type='UniversalVisualizer', vis_backends=vis_backends)

log_level = 'INFO'
load_from = None
resume = False

randomness = dict(seed=0, deterministic=False)
