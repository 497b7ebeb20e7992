# VAPT on an open_clip ViT-B/16 visual tower, VTAB-1k CIFAR-100, with a zero-shot-initialised head: the text tower
# embeds the class names with the templates once at build time (open_clip.build_zero_shot_classifier), then is
# dropped; logits = exp(logit_scale) * normalize(features) @ W. Trains prompts + W (768 -> 512 -> 100).
# Images are normalised with CLIP's mean/std (the model's default data preprocessor).
_base_ = ['../_base_/vapt_vtab.py']

# ---- settings ---------------------------------------------------------------------------------------------------
data_root = 'data/vtab-1k/cifar'
# A local open_clip checkpoint for the architecture below, e.g. open_clip's ViT-B-16 laion2b_s34b_b88k weights
# (open_clip_pytorch_model.bin / .safetensors). OpenAI's ViT-B/16 weights need model_name='ViT-B-16-quickgelu'.
pretrained = 'checkpoints/open_clip_ViT-B-16.safetensors'
model_name = 'ViT-B-16'
# ------------------------------------------------------------------------------------------------------------------
classnames = [
    'apple', 'aquarium fish', 'baby', 'bear', 'beaver', 'bed', 'bee', 'beetle', 'bicycle', 'bottle', 'bowl', 'boy',
    'bridge', 'bus', 'butterfly', 'camel', 'can', 'castle', 'caterpillar', 'cattle', 'chair', 'chimpanzee', 'clock',
    'cloud', 'cockroach', 'couch', 'crab', 'crocodile', 'cup', 'dinosaur', 'dolphin', 'elephant', 'flatfish',
    'forest', 'fox', 'girl', 'hamster', 'house', 'kangaroo', 'keyboard', 'lamp', 'lawn mower', 'leopard', 'lion',
    'lizard', 'lobster', 'man', 'maple tree', 'motorcycle', 'mountain', 'mouse', 'mushroom', 'oak tree', 'orange',
    'orchid', 'otter', 'palm tree', 'pear', 'pickup truck', 'pine tree', 'plain', 'plate', 'poppy', 'porcupine',
    'possum', 'rabbit', 'raccoon', 'ray', 'road', 'rocket', 'rose', 'sea', 'seal', 'shark', 'shrew', 'skunk',
    'skyscraper', 'snail', 'snake', 'spider', 'squirrel', 'streetcar', 'sunflower', 'sweet pepper', 'table', 'tank',
    'telephone', 'television', 'tiger', 'tractor', 'train', 'trout', 'tulip', 'turtle', 'wardrobe', 'whale',
    'willow tree', 'wolf', 'woman', 'worm']  # CIFAR-100's fine labels in label order
model = dict(
    type='promptkit.OpenCLIPClassifier',
    model_name=model_name,
    num_classes=len(classnames),
    pretrained=pretrained,
    head='zero_shot',
    classnames=classnames,
    templates=['a photo of a {}.', 'a blurry photo of a {}.', 'a low resolution photo of a {}.'],
    prompt=dict(type='AdaptivePrompt', num_tokens=10, static_layers=1, kernel_size=2, hidden_dim=8, dropout=0.1,
                conv_dropout=0.1, mlp_dropout=0.1))
# CLIP's logit scale (100) multiplies the head's and prompts' gradients, so the supervised-ViT lr grid is far too
# large here; 0.01 x 64 / 256 = 2.5e-3 is in the range of SGD rates used to tune CLIP (CoOp: 2e-3). Not tuned.
base_lr = 0.01
optim_wrapper = dict(optimizer=dict(lr=base_lr * 64 / 256))
train_dataloader = dict(dataset=dict(data_root=data_root))
val_dataloader = dict(dataset=dict(data_root=data_root))
test_dataloader = val_dataloader
