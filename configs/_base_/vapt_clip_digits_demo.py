# The open_clip side of the CPU image demo: the digits data of vapt_digits_demo.py with a tiny open_clip CLIP
# (visual tower: 32x32 input, 4x4 patches, width 64, 4 blocks; text tower: width 64, 2 blocks), registered under
# `clip_name` from `model_cfg`. Stage 1 trains the visual tower fully with a linear head on digits 0-4; stage 2
# freezes it, drops the text tower and tunes prompts + a zero-shot-initialised head on digits 5-9. The demo's
# text tower is never trained, so here the zero-shot initialisation carries no knowledge: the demo exercises the
# path (tokenizer, text embeddings, logit scale) that a real CLIP checkpoint makes useful.
_base_ = ['./vapt_digits_demo.py']

clip_name = 'promptkit-digits-tiny'
tiny_clip = dict(
    embed_dim=64,
    vision_cfg=dict(image_size=32, patch_size=4, width=64, layers=4, head_width=16, mlp_ratio=4.0),
    text_cfg=dict(context_length=16, vocab_size=49408, width=64, heads=4, layers=2))
model = dict(
    _delete_=True,
    type='promptkit.OpenCLIPClassifier',
    model_name=clip_name, model_cfg=tiny_clip,
    num_classes=5,
    pretrained='work_dirs/clip_digits-pretrain_demo/epoch_30.pth',  # stage 1's final checkpoint
    head='zero_shot',
    classnames=['five', 'six', 'seven', 'eight', 'nine'],
    templates=['a photo of the digit {}.', 'a scan of a handwritten {}.'])
