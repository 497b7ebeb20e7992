"""Extra FLOPs per denoising step of prompt strategies in the frozen Stable Diffusion 1.5 UNet:
``python tools/analysis/t2i_flops.py [--tokens 16] [--latent 64] [--text-tokens 77] [--rank 4]``.

The UNet is built from SD 1.5's published config values (below) on PyTorch's meta device: no weights, no download,
seconds. Each site's shape comes from the host (width C, heads H, head width d, kind) and its token count N from a
meta forward. Printed: the closed forms per strategy, summed over the 32 sites, for one UNet evaluation at batch 1
(a guided sampling step runs the UNet twice), and, where the strategies build on this UNet, the same quantities
measured with ``promptkit.flops.count_flops`` (torch's FLOP counter, SDPA counted) as prompted minus bare.
"""
from __future__ import annotations

import argparse
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))

import torch  # noqa: E402

#: stable-diffusion-v1-5 unet/config.json (the values that shape the network).
SD15_UNET = dict(sample_size=64, in_channels=4, out_channels=4, layers_per_block=2,
                 block_out_channels=(320, 640, 1280, 1280),
                 down_block_types=('CrossAttnDownBlock2D', 'CrossAttnDownBlock2D', 'CrossAttnDownBlock2D',
                                   'DownBlock2D'),
                 up_block_types=('UpBlock2D', 'CrossAttnUpBlock2D', 'CrossAttnUpBlock2D', 'CrossAttnUpBlock2D'),
                 cross_attention_dim=768, attention_head_dim=8, norm_num_groups=32)


def build(latent: int):
    from diffusers import UNet2DConditionModel
    with torch.device('meta'):
        return UNet2DConditionModel(**dict(SD15_UNET, sample_size=latent))


def site_tokens(unet, latent: int, text: int) -> dict[str, int]:
    """N (query tokens) of every transformer-block attention, from a forward on the meta device."""
    found, handles = {}, []
    for name, m in unet.named_modules():
        if name.endswith(('.attn1', '.attn2')):
            def hook(mod, args, kwargs, name=name):
                found[name] = (args[0] if args else kwargs['hidden_states']).shape[1]
            handles.append(m.register_forward_pre_hook(hook, with_kwargs=True))
    with torch.no_grad():
        unet(*inputs(latent, text))
    for h in handles:
        h.remove()
    return found


def inputs(latent: int, text: int) -> tuple:
    return (torch.empty(1, 4, latent, latent, device='meta'), torch.tensor(500, device='meta'),
            torch.empty(1, text, 768, device='meta'))


def closed_forms(infos, tokens: dict[str, int], M: int, k: int, text: int) -> dict[str, dict]:
    """Per-strategy extra FLOPs (multiply-add = 2; elementwise work not counted) and trainable parameters."""
    approx = sum(4 * tokens[s.name] * M * s.dim + 4 * M * s.dim * k for s in infos)
    kv = sum(4 * tokens[s.name] * M * s.num_heads * s.head_dim for s in infos)
    # Conventional (deep) prompt tuning, for reference: M tokens appended to every transformer block's sequence
    # go through attn1 (q, k, v, out projections; attention over N + M), attn2 (q, out; M queries over the text)
    # and the GEGLU feed-forward (C -> 8C -> 4C -> C): 36·M·C² + 4·C·((N+M)² − N²) + 4·M·L·C per block.
    blocks = {s.name.rsplit('.', 1)[0]: (s.dim, tokens[s.name]) for s in infos}
    deep = sum(36 * M * C * C + 4 * C * ((N + M) ** 2 - N ** 2) + 4 * M * text * C for C, N in blocks.values())
    return dict(
        ApproxPrompt=dict(flops=approx, params=sum(M * s.dim + 2 * k * s.dim + 1 for s in infos),
                          formula='Σ 4·N·M·C + 4·M·C·k'),
        AttentionPrompt=dict(flops=kv, params=sum(2 * M * s.head_dim + 2 * M for s in infos),
                             formula='Σ 4·N·T·C (T = M)'),
        deep_token_prompts=dict(flops=deep, params=sum(M * C for C, _ in blocks.values()),
                                formula='Σ_blocks 36·M·C² + 4·C·((N+M)² − N²) + 4·M·L·C'))


def measured(unet, prompt: dict, latent: int, text: int, base: int) -> tuple[int, int] | str:
    """(extra FLOPs, trainable parameters) of ``prompt`` attached to ``unet``, or why it could not be built."""
    from promptkit.flops import count_flops
    from promptkit.models import attach_prompts
    try:
        with torch.device('meta'):
            host, strategy, _ = attach_prompts(unet, prompt)
    except Exception as e:  # report, do not hide: the closed form is still printed
        return f'not measurable here: {type(e).__name__}: {e}'
    try:
        strategy.eval().requires_grad_(False)  # not a submodule of the UNet: count_flops cannot freeze it
        flops = count_flops(unet, *inputs(latent, text))
        return flops - base, sum(p.numel() for p in strategy.parameters())
    finally:
        host.detach()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--tokens', type=int, default=16, help='M prompts (ApproxPrompt) = T K/V prompts')
    parser.add_argument('--rank', type=int, default=4)
    parser.add_argument('--latent', type=int, default=64, help='latent size (512 px / 8)')
    parser.add_argument('--text-tokens', type=int, default=77)
    args = parser.parse_args()
    import promptkit  # noqa: F401
    from promptkit.flops import count_flops
    from promptkit.hosts.diffusers import DiffusersUNetHost

    unet = build(args.latent)
    infos = DiffusersUNetHost(unet).infos()
    tokens = site_tokens(unet, args.latent, args.text_tokens)
    base = count_flops(unet, *inputs(args.latent, args.text_tokens))
    M = args.tokens
    print(f'SD 1.5 UNet, {sum(p.numel() for p in unet.parameters()):,} parameters, {len(infos)} sites, '
          f'{args.latent}² latents, {args.text_tokens} text tokens, M = T = {M}, rank {args.rank}')
    print(f'bare UNet: {base / 1e9:.3f} GFLOPs per evaluation (batch 1)')
    widths = sorted({(s.dim, tokens[s.name]) for s in infos})
    print('site shapes (C, N): ' + ', '.join(f'{c}x{n}' for c, n in widths))
    forms = closed_forms(infos, tokens, M, args.rank, args.text_tokens)
    print('| method | closed form | extra GFLOPs / evaluation | % of bare | trainable params | measured |')
    print('|---|---|---:|---:|---:|---|')
    cfgs = dict(ApproxPrompt=dict(type='ApproxPrompt', num_tokens=M, rank=args.rank),
                AttentionPrompt=dict(type='AttentionPrompt', num_tokens=M, train_head_norm=False))
    for name, f in forms.items():
        got = measured(unet, cfgs[name], args.latent, args.text_tokens, base) if name in cfgs else 'analytical only'
        if isinstance(got, tuple):
            got = f'{got[0] / 1e9:.4f} GFLOPs, {got[1]:,} params' + (
                ' (= closed form)' if got[0] == f['flops'] and got[1] == f['params'] else ' (differs!)')
        print(f'| {name} | {f["formula"]} | {f["flops"] / 1e9:.4f} | {100 * f["flops"] / base:.3f} | '
              f'{f["params"]:,} | {got} |')
    a, d = forms['ApproxPrompt']['flops'], forms['deep_token_prompts']['flops']
    print(f'ApproxPrompt vs deep token prompts: {100 * (a - d) / d:+.1f}% additional computation')


if __name__ == '__main__':
    main()
