# Baseline on the APT SSv2 recipe: linear probe as in the official linear-probe script (no prompts;
# head + fc_norm trained, base lr 0.01).
_base_ = ['./videomae_ssv2.py']
base_lr, num_gpus, videos_per_gpu = 0.01, 8, 8
model = dict(backbone=dict(prompt=None, train_roles=('head_norm', )))
optim_wrapper = dict(optimizer=dict(lr=base_lr * num_gpus * videos_per_gpu / 256))
