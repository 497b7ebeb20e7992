"""Text-to-image metrics on tiny inputs: the digits judge on real digits, Fréchet distance, drift, CLIP-T, CLIP-I
and DINO maths with random-init towers (no weights are downloaded)."""
import pytest
import torch
import torch.nn.functional as F


@pytest.fixture(scope='module')
def judge():
    from promptkit.evaluation import DigitsJudge
    return DigitsJudge(rotate=1)


def test_judge_scores_real_held_out_digits(judge):
    from promptkit.datasets import load_captioned_digits
    upright, labels, _ = load_captioned_digits('test')
    turned, _, _ = load_captioned_digits('test', rotate=1)
    assert judge.accuracy(upright, labels) >= 0.95
    assert judge.accuracy(turned, labels, rotate=1) >= 0.95  # turned back before judging
    assert judge.accuracy(turned, labels) < 0.5  # ... which matters
    assert judge.predict_rotated(turned).double().mean() >= 0.95
    assert judge.predict_rotated(upright).double().mean() <= 0.05


def test_judge_metric_on_real_digits(judge):
    from promptkit.datasets import load_captioned_digits
    from promptkit.evaluation import DigitsJudgeMetric
    turned, labels, _ = load_captioned_digits('test', rotate=1)
    metric = DigitsJudgeMetric(rotate=1, judge=judge)
    samples = [dict(pred_image=im, gt_label=int(y)) for im, y in zip(turned, labels)]
    metric.process({}, samples[:200])
    metric.process({}, samples[200:])
    out = metric.compute_metrics(metric.results)
    assert out['content_accuracy'] == pytest.approx(judge.accuracy(turned, labels, rotate=1))
    assert out['domain_rate'] >= 0.95
    assert abs(out['fd']) < 1e-6  # the generated set is the reference set
    wrong = DigitsJudgeMetric(rotate=1, judge=judge)
    wrong.process({}, [dict(pred_image=im, gt_label=(int(y) + 1) % 10) for im, y in zip(turned, labels)])
    assert wrong.compute_metrics(wrong.results)['content_accuracy'] < 0.05
    with pytest.raises(KeyError, match="no 'pred_image'"):
        metric.process({}, [dict(image=turned[0], gt_label=1)])


def test_frechet_distance_closed_forms():
    from promptkit.evaluation import frechet_distance
    torch.manual_seed(0)
    x = torch.randn(400, 6) @ torch.randn(6, 6)
    assert abs(frechet_distance(x, x)) < 1e-6
    shift = torch.arange(6.0)
    assert frechet_distance(x, x + shift) == pytest.approx(float((shift ** 2).sum()), rel=1e-6)
    # scaling by 2: |mu|^2 + Tr(S + 4S - 2·2S) = |mu|^2 + Tr(S)
    cov = torch.cov(x.double().T)
    expected = float((x.double().mean(0) ** 2).sum() + torch.trace(cov))
    assert frechet_distance(x, 2 * x) == pytest.approx(expected, rel=1e-6)
    with pytest.raises(ValueError, match='equal D'):
        frechet_distance(x, x[:, :3])


def test_frechet_distance_singular_covariances_exact_and_quiet():
    """Pixels that never change (an 8×8 digit's border) and fewer samples than dimensions make both covariances
    singular: still exact, and no warning."""
    import warnings

    from scipy import linalg

    from promptkit.evaluation import frechet_distance
    torch.manual_seed(0)
    x = torch.cat([torch.zeros(30, 3), torch.rand(30, 61)], 1).double()  # 30 samples, 64 dims, 3 constant
    y = torch.cat([torch.zeros(40, 3), torch.rand(40, 61) ** 2], 1).double()
    with warnings.catch_warnings():
        warnings.simplefilter('error')
        shift = frechet_distance(x, x + 0.5)
        value = frechet_distance(x, y)
    assert shift == pytest.approx(64 * 0.25, rel=1e-6)  # sqrt of zero eigenvalues at float64 noise
    ca, cb = torch.cov(x.T).numpy(), torch.cov(y.T).numpy()
    ref = ((x.mean(0) - y.mean(0)) ** 2).sum().item() + ca.trace() + cb.trace() - \
        2 * linalg.sqrtm(ca @ cb + 1e-12 * torch.eye(64).numpy()).real.trace()
    assert value == pytest.approx(ref, rel=1e-4)


def test_frechet_metric_and_registry():
    from promptkit.registry import METRICS
    torch.manual_seed(0)
    ref = torch.rand(50, 1, 4, 4)
    metric = METRICS.build(dict(type='promptkit.FrechetDistance', reference=ref))
    metric.process({}, [dict(pred_image=im) for im in ref])
    assert abs(metric.compute_metrics(metric.results)['fd']) < 1e-6
    other = METRICS.build(dict(type='promptkit.FrechetDistance', reference=ref,
                               feature_extractor=dict(type='PixelEncoder')))
    other.process({}, [dict(pred_image=(im * 0.5)) for im in ref])
    assert other.compute_metrics(other.results)['fd'] > 0.01


def test_drift():
    from promptkit.evaluation import Drift, drift
    torch.manual_seed(0)
    a, b = torch.rand(8, 1, 8, 8), torch.rand(8, 1, 8, 8)
    assert torch.allclose(drift(a, a), torch.zeros(8, dtype=torch.float64), atol=1e-12)
    ref = 1 - F.cosine_similarity(a.flatten(1).double(), b.flatten(1).double(), dim=-1)
    assert torch.allclose(drift(a, b), ref)
    assert torch.allclose(drift(a, 3 * a.clamp(max=0.3)), drift(a, a.clamp(max=0.3)))  # scale-free, like cosine
    metric = Drift()
    metric.process({}, [dict(pred_image=x, base_image=y) for x, y in zip(a, b)])
    assert metric.compute_metrics(metric.results)['drift'] == pytest.approx(float(ref.mean()))


def test_images_in_unit_range_only():
    from promptkit.evaluation import to_unit_images
    assert to_unit_images(torch.full((1, 2, 2), 255, dtype=torch.uint8)).eq(1).all()
    with pytest.raises(ValueError, match=r'\(x \+ 1\) / 2'):
        to_unit_images(torch.full((1, 1, 2, 2), -1.0))


@pytest.fixture(scope='module')
def tiny_clip():
    import open_clip
    torch.manual_seed(0)
    return open_clip.CLIP(embed_dim=16, vision_cfg=open_clip.CLIPVisionCfg(layers=1, width=32, head_width=16,
                                                                            patch_size=8, image_size=32),
                          text_cfg=open_clip.CLIPTextCfg(context_length=16, vocab_size=49408, width=32, heads=2,
                                                         layers=1))


def test_clip_t_is_the_image_caption_cosine(tiny_clip):
    from promptkit.evaluation import ClipScore
    torch.manual_seed(0)
    images, captions = torch.rand(3, 3, 20, 20), ['a photo of a cat', 'a red car', 'the digit seven']
    metric = ClipScore(model=tiny_clip)
    metric.process({}, [dict(pred_image=im, caption=c) for im, c in zip(images[:2], captions[:2])])
    metric.process({}, [dict(pred_image=images[2], caption=captions[2])])
    out = metric.compute_metrics(metric.results)
    # reference: open_clip's own embeddings of the resized, normalised images and the tokenized captions
    x = F.interpolate(images, size=32, mode='bicubic', align_corners=False).clamp(0, 1)
    mean = torch.tensor((0.48145466, 0.4578275, 0.40821073)).view(1, 3, 1, 1)
    std = torch.tensor((0.26862954, 0.26130258, 0.27577711)).view(1, 3, 1, 1)
    import open_clip
    with torch.no_grad():
        img = F.normalize(tiny_clip.encode_image((x - mean) / std), dim=-1)
        txt = F.normalize(tiny_clip.encode_text(open_clip.tokenizer.tokenize(captions, context_length=16)), dim=-1)
    cos = (img * txt).sum(-1).double()
    assert out['clip_t'] == pytest.approx(float(cos.mean()), abs=1e-5)
    assert out['clip_score'] == pytest.approx(float(100 * cos.clamp(min=0).mean()), abs=1e-3)


def test_clip_i_and_dino_identical_images_give_one(tiny_clip):
    import timm
    from promptkit.evaluation import ClipImageSimilarity, DinoSimilarity
    torch.manual_seed(0)
    ref = torch.rand(2, 3, 24, 24)
    vit = timm.create_model('vit_tiny_patch16_224', pretrained=False, num_classes=0, img_size=32, depth=1)
    for metric in (ClipImageSimilarity(reference=ref[:1], model=tiny_clip), DinoSimilarity(reference=ref[:1],
                                                                                          model=vit)):
        metric.process({}, [dict(pred_image=ref[0])])
        name, value = next(iter(metric.compute_metrics(metric.results).items()))
        assert value == pytest.approx(1.0, abs=1e-5), name
        # several references: the mean over all generated x reference pairs
        both = type(metric)(reference=ref, model=tiny_clip if name == 'clip_i' else vit)
        both.process({}, [dict(pred_image=im) for im in ref])
        feats = both.encoder.encode_images(ref)
        assert both.compute_metrics(both.results)[name] == pytest.approx(float((feats @ feats.T).mean()), abs=1e-5)


def test_weights_only_from_paths(tmp_path):
    from promptkit.evaluation import ClipScore, DinoSimilarity
    with pytest.raises(FileNotFoundError, match='never downloads'):
        ClipScore(model='ViT-B-32', pretrained='openai')
    with pytest.raises(FileNotFoundError, match='missing.safetensors'):
        DinoSimilarity(reference=torch.rand(1, 3, 8, 8), checkpoint=str(tmp_path / 'missing.safetensors'))
