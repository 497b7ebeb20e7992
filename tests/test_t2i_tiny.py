"""The demo's offline tiny text-to-image model and captioned digits: tokenizer ids, folder round-trip, data."""
import os

import numpy as np
import pytest
import torch


@pytest.fixture(scope='module')
def tokenizer(tmp_path_factory):
    from promptkit.t2i.tiny import build_clip_tokenizer
    return build_clip_tokenizer(str(tmp_path_factory.mktemp('tok')))


TEXTS = ['a photo of the digit seven', 'Hello, World!  The  quick-brown fox (2nd) jumps 123 times.',
         "don't stop: café, naïve, Émigré; <tag> & 'quotes'", 'ALL CAPS and MiXeD cAsE words', '']


@pytest.mark.parametrize('text', TEXTS)
def test_tokenizer_ids_equal_open_clip(tokenizer, text):
    import open_clip
    ref = open_clip.get_tokenizer('ViT-B-32')([text])[0]
    ref = ref[ref != 0].tolist()  # open_clip pads with 0 to 77
    assert tokenizer(text).input_ids == ref
    assert tokenizer.decode(ref, skip_special_tokens=True).strip() == open_clip.tokenizer.SimpleTokenizer().decode(
        ref).replace('<start_of_text>', '').replace('<end_of_text>', '').strip()


def test_tokenizer_padding_and_length(tokenizer):
    ids = tokenizer(['a b', 'a'], padding='max_length', max_length=77, return_tensors='pt').input_ids
    assert ids.shape == (2, 77) and int(ids[0, 0]) == 49406 and int(ids[0, -1]) == 49407  # SD pads with <|eot|>
    assert len(tokenizer) == 49408


def test_tiny_model_saves_and_loads_offline(tmp_path, monkeypatch):
    monkeypatch.setenv('HF_HUB_OFFLINE', '1')
    from promptkit.models.text_to_image import PromptedTextToImage
    from promptkit.t2i.tiny import build_tiny_text_to_image, load_tiny_text_to_image, save_tiny_text_to_image

    parts = build_tiny_text_to_image(str(tmp_path / 'tokfiles'), seed=3)
    folder = save_tiny_text_to_image(str(tmp_path / 'tiny'), parts)
    assert sorted(os.listdir(folder)) == ['model_index.json', 'scheduler', 'text_encoder', 'tokenizer', 'unet']
    loaded = load_tiny_text_to_image(folder)
    for name in ('unet', 'text_encoder'):
        a, b = parts[name].state_dict(), loaded[name].state_dict()
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), name
    assert loaded['tokenizer']('a photo of the digit two').input_ids == \
        parts['tokenizer']('a photo of the digit two').input_ids
    assert loaded['scheduler'].config.beta_schedule == 'squaredcos_cap_v2'
    # promptkit's wrapper reads the same folder, pixel-space (no VAE), and generates 1x8x8 images
    model = PromptedTextToImage(pretrained=folder, prompt=dict(type='ApproxPrompt', num_tokens=4, rank=2))
    assert model.vae is None and len(model.host.sites) == 14
    img = model.sample(['a photo of the digit two'], num_inference_steps=2, guidance_scale=2.0)
    assert img.shape == (1, 1, 8, 8) and 0 <= img.min() and img.max() <= 1
    with pytest.raises(FileExistsError, match='not empty'):
        save_tiny_text_to_image(folder, parts)


def test_captioned_digits():
    from sklearn.datasets import load_digits
    from promptkit.datasets import CaptionedDigitsDataset, load_captioned_digits

    train, ytr, ctr = load_captioned_digits('train')
    test, yte, _ = load_captioned_digits('test')
    assert train.shape[1:] == (1, 8, 8) and len(train) + len(test) == 1797 and 0 <= train.min() and train.max() <= 1
    names = ('zero', 'one', 'two', 'three', 'four', 'five', 'six', 'seven', 'eight', 'nine')
    assert ctr[0] == f'a photo of the digit {names[int(ytr[0])]}'
    flat = {tuple(x.flatten().tolist()) for x in train}
    assert sum(tuple(x.flatten().tolist()) in flat for x in test) < 10  # disjoint up to duplicate scans
    rot, yrot, _ = load_captioned_digits('test', rotate=1)
    assert torch.equal(yrot, yte)
    ref = np.rot90(load_digits().images / 16.0, k=1, axes=(1, 2))  # turned the same way as numpy's rot90
    assert any(np.allclose(rot[0, 0].numpy(), r) for r in ref)
    ds = CaptionedDigitsDataset(split='test', rotate=1)
    item = ds[0]
    assert item['inputs'].dtype == torch.uint8 and item['inputs'].shape == (1, 8, 8)
    assert torch.equal(item['inputs'], (rot[0] * 255).round().to(torch.uint8))
    assert item['data_samples']['gt_label'] == int(yte[0]) and item['data_samples']['rotate'] == 1
    with pytest.raises(ValueError, match='split must be one of'):
        CaptionedDigitsDataset(split='val')
