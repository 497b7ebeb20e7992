_base_ = ["./apt_videomae_vit-b.py"]  # the APT recipe, with the demo data below

# Data for the CPU demo: generated clips of a shape moving in one of four directions (promptkit.datasets.demo),
# 16 frames of 32x32, written as H.264 files with mmaction2 annotation lists the first time they are needed.
# The class is the direction of motion, so a single frame says nothing: the model must compare frames.
# No crop or flip: either would change or hide the direction.
demo_task = 'axis'
demo_root = 'data/demo_motion_axis'
train_pipeline = [
    dict(type='DecordInit'),
    dict(type='SampleFrames', clip_len=8, frame_interval=2, num_clips=1),
    dict(type='DecordDecode'),
    dict(type='Resize', scale=(-1, 32)),
    dict(type='FormatShape', input_format='NCTHW'),
    dict(type='PackActionInputs'),
]
test_pipeline = [
    dict(type='DecordInit'),
    dict(type='SampleFrames', clip_len=8, frame_interval=2, num_clips=1, test_mode=True),
    dict(type='DecordDecode'),
    dict(type='Resize', scale=(-1, 32)),
    dict(type='FormatShape', input_format='NCTHW'),
    dict(type='PackActionInputs'),
]
train_dataloader = dict(
    batch_size=16, num_workers=0, persistent_workers=False,  # 2 CPU cores: decode in-process
    sampler=dict(type='DefaultSampler', shuffle=True),
    dataset=dict(type='promptkit.DemoMotionDataset', data_root=demo_root, task=demo_task, split='train',
                 pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=16, num_workers=0, persistent_workers=False,  # 2 CPU cores: decode in-process
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(type='promptkit.DemoMotionDataset', data_root=demo_root, task=demo_task, split='test',
                 pipeline=test_pipeline, test_mode=True))
test_dataloader = dict(val_dataloader, _delete_=True)  # replaces mmaction2's Kinetics test set
val_evaluator = dict(type='AccMetric')
# Test runs also write confusion_matrix.{csv,png} and per_class_accuracy.csv into <work_dir>/<timestamp>/.
test_evaluator = [dict(type='AccMetric'), dict(type='promptkit.ConfusionMatrixReport')]
