# Attention Prompt Tuning recipe on a VideoMAE ViT-B (docs/methods.md §1), shared by configs/apt/*.
# Inherits mmaction2's own VideoMAE ViT-B recognizer (Recognizer3D + TimeSformerHead, test pipeline, runtime)
# and wraps its backbone. Dataset configs set the data, the class count, the prompt count and the weights.
_base_ = ['mmaction::recognition/videomae/vit-base-p16_videomae-k400-pre_16x4x1_kinetics-400.py']
custom_imports = dict(imports=['promptkit'], allow_failed_imports=False)

model = dict(
    backbone=dict(
        _delete_=True,
        type='promptkit.PromptedBackbone',
        backbone=dict(
            type='VisionTransformer', img_size=224, patch_size=16, embed_dims=768, depth=12, num_heads=12,
            mlp_ratio=4, qkv_bias=True, num_frames=16, norm_cfg=dict(type='LN', eps=1e-6)),
        # Official scripts: prompts in every block (start 0, end 11), dropout 0.1, reparameterisation on;
        # trains prompts + head + fc_norm.
        prompt=dict(type='AttentionPrompt', num_tokens=400, start=0, end=None, dropout=0.1, reparam=True,
                    train_head_norm=True),
        pretrained=None),
    # Official head init: trunc_normal(0.02) then x0.001 (init_scale), i.e. std 2e-5; label smoothing 0.1.
    cls_head=dict(init_std=0.02 * 0.001, label_smooth_eps=0.1, dropout_ratio=0.0))

# AdamW (betas 0.9/0.999, eps 1e-8), weight decay 1e-5 on everything but 1-D tensors (biases, norms).
# Dataset configs set lr = base_lr * total_batch / 256, as the official code scales it.
optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=0.05 * 64 / 256, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-5),
    paramwise_cfg=dict(flat_decay_mult=0.0, norm_decay_mult=0.0, bias_decay_mult=0.0),
    clip_grad=None)

# Per-step cosine to min_lr (1e-6 scaled like lr) after 10 linear warm-up epochs from ~0, 100 epochs.
train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=100, val_begin=1, val_interval=5)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-6, by_epoch=True, begin=0, end=10, convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', T_max=90, eta_min=1e-6 * 64 / 256, by_epoch=True, begin=10, end=100,
         convert_to_iter_based=True),
]
auto_scale_lr = dict(enable=False, base_batch_size=64)

# The official protocol tests the final-epoch model. Validation and test read the same list here (the data sets
# have no separate validation split), so no checkpoint is chosen by validation accuracy: that would select on the
# test set. Validation every 5 epochs only monitors.
default_hooks = dict(checkpoint=dict(type='CheckpointHook', interval=5, save_best=None, max_keep_ckpts=3),
                     logger=dict(type='LoggerHook', interval=50))
# Checkpoints hold the trained tensors and optimizer state only, plus a fingerprint of the frozen base.
custom_hooks = [dict(type='promptkit.PromptCheckpointHook'), dict(type='promptkit.TrainingCurvesHook')]
