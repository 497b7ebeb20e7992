"""Site for diffusers' ``Attention`` (``diffusers.models.attention_processor``): a parameter-free processor."""
from __future__ import annotations

from torch import Tensor, nn

from ..attention import prompted_attention
from ..registry import SITES
from .base import ProcessorSite

#: Processors the site may take the place of: it computes exactly what they compute (SDPA attention).
STOCK_PROCESSORS = ('AttnProcessor2_0', 'AttnProcessor')


@SITES.register_module()
class DiffusersAttentionSite(ProcessorSite):
    """diffusers ``AttnProcessor2_0`` re-implemented through the module's own ``to_q``/``to_k``/``to_v``/``to_out``,
    with the strategy's ``extra_kv`` and ``attn_output`` hooks.

    The site is installed with ``attn.set_processor(site)`` (diffusers' own mechanism, so ``Attention.forward``,
    PEFT LoRA layers on the projections and gradient checkpointing keep working) and ``remove`` puts the previous
    processor back. It is not an ``nn.Module``: ``unet.state_dict()`` never sees it, and the trained tensors live
    in the strategy only.

    Without prompts it computes what ``AttnProcessor2_0`` computes, operation for operation: ``spatial_norm``,
    4-D ``(B, C, H, W)`` inputs, masks through ``attn.prepare_attention_mask``, ``group_norm``, ``norm_cross``,
    ``norm_q``/``norm_k``, SDPA with the default 1/√d scale, ``to_out[0]``, ``to_out[1]`` (dropout),
    ``residual_connection`` and ``rescale_output_factor``.

    Hooks:

    - ``extra_kv(site, q)``: key/value prompts appended after the keys (self- and cross-attention alike) inside one
      softmax; an attention mask is padded so every query sees every prompt.
    - ``attn_output(site, x, out)``: added after ``to_out[0]`` and before ``to_out[1]`` (the dropout); ``x`` is
      what ``to_q`` reads, (B, N, C) tokens.
    """

    targets = ('diffusers.models.attention_processor.Attention',)
    hook_names = ('extra_kv', 'attn_output')

    def install(self) -> 'DiffusersAttentionSite':
        current = self.module.processor
        if not isinstance(current, ProcessorSite) and type(current).__name__ not in STOCK_PROCESSORS:
            raise TypeError(f'{self.info.name} runs the processor {type(current).__name__}, which promptkit would '
                            f'replace and lose; promptkit takes the place of {list(STOCK_PROCESSORS)} only. Call '
                            'unet.set_default_attn_processor() (or remove the IP-Adapter / custom processors) before '
                            'attaching prompts')
        return super().install()

    def __call__(self, attn: nn.Module, hidden_states: Tensor, encoder_hidden_states: Tensor | None = None,
                 attention_mask: Tensor | None = None, temb: Tensor | None = None, *args, **kwargs) -> Tensor:
        info = self.info
        residual = hidden_states
        if attn.spatial_norm is not None:
            hidden_states = attn.spatial_norm(hidden_states, temb)
        input_ndim = hidden_states.ndim
        if input_ndim == 4:
            batch_size, channel, height, width = hidden_states.shape
            hidden_states = hidden_states.view(batch_size, channel, height * width).transpose(1, 2)  # (B, HW, C)
        batch_size, sequence_length, _ = (hidden_states.shape if encoder_hidden_states is None
                                          else encoder_hidden_states.shape)
        if attention_mask is not None:
            attention_mask = attn.prepare_attention_mask(attention_mask, sequence_length, batch_size)
            # (B*heads, 1 or N, S) -> (B, heads, 1 or N, S), SDPA's layout
            attention_mask = attention_mask.view(batch_size, attn.heads, -1, attention_mask.shape[-1])
        if attn.group_norm is not None:
            hidden_states = attn.group_norm(hidden_states.transpose(1, 2)).transpose(1, 2)
        x = hidden_states  # what to_q reads: (B, N, C)
        query = attn.to_q(hidden_states)
        if encoder_hidden_states is None:
            encoder_hidden_states = hidden_states
        elif attn.norm_cross:
            encoder_hidden_states = attn.norm_encoder_hidden_states(encoder_hidden_states)
        key = attn.to_k(encoder_hidden_states)
        value = attn.to_v(encoder_hidden_states)
        inner_dim = key.shape[-1]
        head_dim = inner_dim // attn.heads
        query = query.view(batch_size, -1, attn.heads, head_dim).transpose(1, 2)  # (B, H, N, d)
        key = key.view(batch_size, -1, attn.heads, head_dim).transpose(1, 2)  # (B, H, S, d)
        value = value.view(batch_size, -1, attn.heads, head_dim).transpose(1, 2)
        if attn.norm_q is not None:
            query = attn.norm_q(query)
        if attn.norm_k is not None:
            key = attn.norm_k(key)
        extra = self.strategy.extra_kv(info, query) if 'extra_kv' in self.active else (None, None)
        # AttnProcessor2_0 runs SDPA with its default scale and no dropout; so does the site.
        hidden_states = prompted_attention(query, key, value, *extra, attn_mask=attention_mask)
        hidden_states = hidden_states.transpose(1, 2).reshape(batch_size, -1, attn.heads * head_dim)  # (B, N, HD)
        hidden_states = hidden_states.to(query.dtype)
        hidden_states = attn.to_out[0](hidden_states)
        if 'attn_output' in self.active:  # after the output projection, before its dropout
            hidden_states = hidden_states + self.strategy.attn_output(info, x, hidden_states)
        hidden_states = attn.to_out[1](hidden_states)
        if input_ndim == 4:
            hidden_states = hidden_states.transpose(-1, -2).reshape(batch_size, channel, height, width)
        if attn.residual_connection:
            hidden_states = hidden_states + residual
        return hidden_states / attn.rescale_output_factor


def promptkit_processors(model: nn.Module) -> dict[str, DiffusersAttentionSite]:
    """The promptkit processors currently installed in ``model``, by attention module path."""
    return {name: m.processor for name, m in model.named_modules()
            if isinstance(getattr(m, 'processor', None), DiffusersAttentionSite)}


__all__ = ['DiffusersAttentionSite', 'STOCK_PROCESSORS', 'promptkit_processors']
