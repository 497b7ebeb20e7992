# A supervised ViT-B/16 (timm's `vit_base_patch16_224`: class token, final norm, linear head on the class token)
# with VAPT as the official README runs it (docs/methods.md §3): 10 prompts per block, static prompts in block 0
# (dropout 0.1), adaptive prompts from block 1 on (2x2 channel-shared kernel, shared feature projector of width 8,
# dropout 0.1), frozen backbone kept in eval mode; trains prompts + head (55,608 + 769 K parameters).
# The head starts as in the official code (Kaiming-normal fan-out weights, bias -log 99).
# Task configs set num_classes and pretrained.
model = dict(
    type='promptkit.TimmClassifier',
    model_name='vit_base_patch16_224',
    num_classes=1000,
    pretrained=None,
    load_head=False,
    head_init='vapt',  # the official head init: Kaiming-normal (fan-out), bias -log 99
    prompt=dict(type='AdaptivePrompt', num_tokens=10, static_layers=1, kernel_size=2, hidden_dim=8, dropout=0.1,
                conv_dropout=0.1, mlp_dropout=0.1))
