# Approximated Prompt Tuning (Wu et al., ICCV'23; docs/methods.md §2) on an open_clip ViT-B/16 visual tower, VTAB-1k
# CIFAR-100, zero-shot-initialised head: configs/vapt/vapt_clip-vit-b16_vtab-cifar100.py (data, head, SGD recipe)
# with ApproxPrompt in place of VAPT, as configs/vapt/vpt-deep_clip-vit-b16_vtab-cifar100.py does for VPT-deep.
# The paper reports CLIP results but the official repository has no CLIP code (docs/methods.md §2), so the branch goes
# where ViLT puts it: every block's self-attention, after the output projection, M = 200, rank 4, trained gate:
# 12 x (200*768 + 2*4*768 + 1) = 1,916,940 prompt parameters + the 512 x 100 zero-shot head.
# Optimisation is the host recipe's (SGD, lr 0.01 x 64/256, 100 epochs), untuned for this method.
_base_ = ['../vapt/vapt_clip-vit-b16_vtab-cifar100.py']
# ApproxPrompt is not imported by promptkit.strategies yet.
custom_imports = dict(imports=['promptkit'], allow_failed_imports=False)

model = dict(prompt=dict(_delete_=True, type='ApproxPrompt', num_tokens=200, rank=4, layers='all', dropout=0.0,
                         train_scale=True))
work_dir = './work_dirs/approx_prompt_clip-vit-b16_vtab-cifar100'
