# The conventional prompt-tuning baseline of sd15_dreambooth.py: T = 16 key and value prompts per head space,
# appended inside every attn1 and attn2 softmax of the frozen SD 1.5 UNet (Attention Prompt Tuning's K/V prompts),
# the same M as the ApproxPrompt config. docs/text_to_image.md compares their extra FLOPs.
_base_ = ['../approx_prompt/sd15_dreambooth.py']

model = dict(prompt=dict(_delete_=True, type='AttentionPrompt', num_tokens=16, kinds=('self', 'cross'), dropout=0.0,
                         train_head_norm=False))  # a UNet has no head norm
