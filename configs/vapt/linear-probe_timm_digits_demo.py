# Demo, stage 2 baseline: linear probe (the head alone) on the frozen stage-1 ViT, digits 5-9.
_base_ = ['../_base_/vapt_digits_demo.py']

model = dict(prompt=None)
