# ST-Adapter's image-to-video setting (official code: models_adapter.py, main.py; docs/methods.md): a frozen
# CLIP ViT-B/16 visual tower run frame by frame (promptkit.FrameTower: 8 frames x 197 tokens, no temporal position
# embedding, no attention across frames), per-frame class tokens averaged over the frames, CLIP's frozen ln_post,
# Dropout(0.5), then a new linear head initialised N(0, 0.02), bias 0; CLIP's proj is unused. Inside mmaction2's
# Recognizer3D; shared by configs/st_adapter/clip-vit-b16_*.py, which set the data, the preset and the schedule.
_base_ = ['mmaction::_base_/default_runtime.py']
custom_imports = dict(imports=['promptkit'], allow_failed_imports=False)

# OpenAI's CLIP ViT-B/16 (the official code loads it with torch.jit.load), as an open_clip checkpoint file:
# open_clip's 'ViT-B-16-quickgelu' architecture (OpenAI's weights use QuickGELU) with the 'openai' weights saved
# locally, e.g. open_clip_pytorch_model.bin of the timm/vit_base_patch16_clip_224.openai hub repository. Never
# downloaded by promptkit.
clip_weights = 'checkpoints/open_clip_ViT-B-16-quickgelu_openai.bin'
clip_mean = [122.770938, 116.7460125, 104.09373615]  # CLIP's mean/std in 0..255 RGB (decord decodes RGB)
clip_std = [68.5005327, 66.6321579, 70.32316305]

model = dict(
    type='Recognizer3D',
    backbone=dict(
        type='promptkit.PromptedBackbone',
        # half=True: the frozen tower in float16, as the official code casts every non-adapter parameter (its
        # final norm stays float32). The adapters and the head are float32; train with --amp, as the official
        # code runs under autocast.
        backbone=dict(type='promptkit.FrameTower', tower='open_clip', model_name='ViT-B-16-quickgelu',
                      pretrained=clip_weights, half=True),
        prompt=dict(type='STAdapter', width=384, positions=('mlp',), kernel_size=(3, 1, 1), activation=None,
                    layers='all')),
    # Softmax per view, then the mean over views (official eval).
    cls_head=dict(type='TimeSformerHead', num_classes=400, in_channels=768, init_std=0.02, dropout_ratio=0.5,
                  label_smooth_eps=0.0, average_clips='prob'),
    data_preprocessor=dict(type='ActionDataPreprocessor', mean=clip_mean, std=clip_std, format_shape='NCTHW'))

# AdamW (default betas), lr 1e-3 per 256 clips (dataset configs scale it), weight decay 0.01 except on biases
# (official: no decay on any parameter whose name contains '.bias'). No gradient clipping.
optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.01),
    paramwise_cfg=dict(bias_decay_mult=0.0),
    clip_grad=None)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
default_hooks = dict(checkpoint=dict(type='CheckpointHook', interval=1, save_best='auto', max_keep_ckpts=3),
                     logger=dict(type='LoggerHook', interval=50))
# Checkpoints hold the trained tensors and optimizer state only, plus a fingerprint of the frozen base.
custom_hooks = [dict(type='promptkit.PromptCheckpointHook')]
val_evaluator = dict(type='AccMetric')
test_evaluator = val_evaluator
