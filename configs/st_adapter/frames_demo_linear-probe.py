# The baseline of configs/st_adapter/frames_demo.py: the same frozen per-frame image tower, the same frame averaging,
# frozen final norm, dropout and head, no adapters: a frame-averaged linear probe. It sees the unordered set of
# frames only, so it cannot tell a motion from its time reversal (right from left, down from up).
_base_ = ['./frames_demo.py']
work_dir = './work_dirs/linear-probe_frames_demo'
model = dict(backbone=dict(prompt=None))
