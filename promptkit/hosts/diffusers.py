"""Host for diffusers' ``UNet2DConditionModel`` (Stable Diffusion 1.x / 2.x and SDXL-shaped UNets)."""
from __future__ import annotations

from typing import Iterator

from torch import nn

from ..core import SiteInfo
from ..registry import HOSTS
from .base import Host


@HOSTS.register_module()
class DiffusersUNetHost(Host):
    """Sites of a diffusers ``UNet2DConditionModel``: every ``Attention`` of every ``BasicTransformerBlock``.

    ``attn1`` is the block's self-attention, ``attn2`` its cross-attention over the text states (``to_k``/``to_v``
    read ``cross_attention_dim``); each site has its own width (320/640/1280 in SD 1.5), heads and head width,
    ``kind`` from ``Attention.is_cross_attention``, ``layout='spatial'`` (the token count h·w is known only at
    forward time) and, for cross sites, ``context_dim``. The order index ``layer`` is the running index over all
    sites in module order (down blocks, mid block, up blocks), ``num_layers`` their count: SD 1.5 has 32, SDXL 140.
    Attention modules outside transformer blocks (a VAE's, ``AttnDownBlock2D``'s) are not sites.

    The sites are diffusers attention processors (:class:`DiffusersAttentionSite`), installed only on the targeted
    modules; the others keep their stock processor. Block hooks (token prompts, adapters on the residual stream)
    are refused: a UNet's transformer blocks are not token sequences of a fixed layout.

    Role ``head_norm`` is ``conv_norm_out``, the norm of the UNet's output head (what K/V prompt tuning's
    ``train_head_norm`` trains; the configs here turn it off).

    Replacement guard: a forward pre-hook on the UNet checks before every forward that each promptkit processor is
    still installed; ``unet.set_attn_processor(...)``, ``set_default_attn_processor()`` or
    ``fuse_qkv_projections()`` after attaching replace them silently, and the next forward then fails naming the
    fix instead of running unprompted.
    """

    name = 'diffusers UNet2DConditionModel'
    targets = ('diffusers.models.unets.unet_2d_condition.UNet2DConditionModel',)
    roles = {'head_norm': 'conv_norm_out'}

    def check(self, strategy: nn.Module) -> None:
        missing = [h for h in strategy.hooks if h not in self.supported_hooks]
        if missing:
            raise TypeError(f'{type(strategy).__name__} needs the hooks {missing}, which {self.name} cannot honour: '
                            f'its sites are attention processors and support {list(self.supported_hooks)} only '
                            '(block hooks need token sequences, which a UNet does not have); use ApproxPrompt '
                            '(attn_output) or AttentionPrompt (extra_kv)')

    def records(self) -> Iterator[tuple[SiteInfo, nn.Module, nn.Module | None]]:
        from diffusers.models.attention import BasicTransformerBlock
        from diffusers.models.attention_processor import Attention

        found = []
        for block_name, block in self.model.named_modules():
            if not isinstance(block, BasicTransformerBlock):
                continue
            for child in ('attn1', 'attn2'):
                attn = getattr(block, child, None)
                if isinstance(attn, Attention):
                    found.append((f'{block_name}.{child}', attn))
        # named_modules follows registration order (down, up, mid); the order index follows the data flow.
        stage = {'down_blocks': 0, 'mid_block': 1, 'up_blocks': 2}
        found.sort(key=lambda rec: stage.get(rec[0].split('.', 1)[0], 3))  # stable: module order within a stage
        for i, (name, attn) in enumerate(found):
            cross = bool(attn.is_cross_attention)
            info = SiteInfo(name=name, layer=i, num_layers=len(found), dim=attn.query_dim, num_heads=attn.heads,
                            head_dim=attn.inner_dim // attn.heads, kind='cross' if cross else 'self',
                            layout='spatial',  # block '': a UNet's blocks take no block hooks
                            context_dim=attn.cross_attention_dim if cross else None)
            yield info, attn, None

    def attach(self, strategy: nn.Module | None) -> list:
        """Install a processor on every targeted attention only (the others keep theirs), and the guard."""
        if self.sites:
            raise RuntimeError(f'prompts are already attached to this {self.name}')
        for info, attn, attn_site, _, _ in self.plan():
            if strategy is not None and any(strategy.uses(h, info) for h in attn_site.hook_names):
                self.sites.append(attn_site(attn, info, strategy).install())
        self._guard = self.model.register_forward_pre_hook(self._check_installed)
        return self.sites

    def _check_installed(self, module: nn.Module, args) -> None:
        lost = [s for s in self.sites if not s.installed()]
        if lost:
            found = type(lost[0].module.processor).__name__
            raise RuntimeError(
                f'{len(lost)} of the {len(self.sites)} promptkit attention processors of this UNet were replaced '
                f'(e.g. {lost[0].info.name} now runs {found}), so the prompts would be silently ignored. This '
                'happens after unet.set_attn_processor(...), set_default_attn_processor() or '
                'fuse_qkv_projections(). Do not call them on a prompted UNet; to change processors, unload the '
                'prompts first (promptkit.diffusers.unload_prompts(pipe) or model.detach_prompts()), then load them '
                'again (promptkit.diffusers.load_prompts(pipe, path)); for fused projections, '
                'unfuse_qkv_projections()')
