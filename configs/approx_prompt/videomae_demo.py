# Demo, stage 2 of 2, with Approximated Prompt Tuning (Wu et al., ICCV'23) instead of Attention Prompt Tuning:
# the frozen stage-1 ViT (configs/apt/videomae_demo_pretrain.py) learns the "diagonal" motions with M = 8
# approximated prompts in each of its 4 blocks, rank-4 reparameterisation and a trained gate; trains those and
# the head: 4 x (8*64 + 2*4*64 + 1) = 4,100 prompt parameters + 260 head parameters. Everything else, data and
# optimiser included, is configs/apt/videomae_demo.py, so the two demos compare like for like.
#   python tools/train.py configs/approx_prompt/videomae_demo.py
#   python tools/test.py configs/approx_prompt/videomae_demo.py work_dirs/approx_prompt_videomae_demo/epoch_20.pth
_base_ = ['../apt/videomae_demo.py']
# ApproxPrompt is not imported by promptkit.strategies yet.
custom_imports = dict(imports=['promptkit'], allow_failed_imports=False)

model = dict(backbone=dict(prompt=dict(_delete_=True, type='ApproxPrompt', num_tokens=8, rank=4, layers='all',
                                       dropout=0.0, train_scale=True)))
# Not work_dirs/videomae_demo (the file name's default), which the Attention Prompt Tuning demo uses.
work_dir = './work_dirs/approx_prompt_videomae_demo'
