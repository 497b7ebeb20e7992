# Baseline on the APT SSv2 recipe: full fine-tuning (every backbone weight trained), through the same SDPA
# attention. AdamW at lr 0.05 x bs/256 would diverge for a full model: base lr 5e-4 as in VideoMAE's own
# fine-tuning scripts, weight decay 0.05; schedule, data and augmentation unchanged.
_base_ = ['./videomae_ssv2.py']
base_lr, num_gpus, videos_per_gpu = 5e-4, 8, 8
model = dict(backbone=dict(prompt=None, full_finetune=True))
optim_wrapper = dict(optimizer=dict(lr=base_lr * num_gpus * videos_per_gpu / 256, weight_decay=0.05))
