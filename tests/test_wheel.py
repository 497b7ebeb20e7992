"""The installable tool: a wheel built from the repository holds the configs and the console scripts, and works
from a fresh virtual environment outside the clone.

The fresh environment reuses the installed stack (torch, mmengine, ...) through a ``.pth`` line pointing at this
interpreter's site-packages, so nothing is downloaded or re-installed; only the promptkit wheel goes into it
(``pip install --no-deps --no-index``). ``--system-site-packages`` would not do: a venv made from a venv sees the
base interpreter's packages, not the project venv's.
"""
import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run(cmd, **kw):
    env = {k: v for k, v in os.environ.items() if k not in ('PYTHONPATH', 'PYTHONHOME')}
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300, **kw)
    assert out.returncode == 0, f'{cmd} failed:\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}'
    return out.stdout


@pytest.mark.slow
def test_wheel_installs_and_runs_outside_the_clone(tmp_path):
    src = tmp_path / 'src'
    src.mkdir()
    for name in ('pyproject.toml', 'README.md', 'configs'):
        (shutil.copytree if os.path.isdir(os.path.join(ROOT, name)) else shutil.copy)(
            os.path.join(ROOT, name), src / name)
    shutil.copytree(os.path.join(ROOT, 'promptkit'), src / 'promptkit', symlinks=True,
                    ignore=shutil.ignore_patterns('__pycache__'))
    run([sys.executable, '-m', 'pip', 'wheel', '--no-deps', '--no-build-isolation', '-q', '-w', str(tmp_path / 'dist'),
         str(src)])
    (wheel,) = (tmp_path / 'dist').glob('promptkit-*.whl')
    with zipfile.ZipFile(wheel) as z:
        names = z.namelist()
        scripts = next(z.read(n).decode() for n in names if n.endswith('entry_points.txt'))
    configs = sorted(n for n in names if n.startswith('promptkit/.mim/configs/'))
    repo = sorted('promptkit/.mim/configs/' + os.path.relpath(os.path.join(d, f), os.path.join(ROOT, 'configs'))
                  for d, _, fs in os.walk(os.path.join(ROOT, 'configs')) for f in fs if f.endswith('.py'))
    assert configs == repo  # every config, as files

    env = tmp_path / 'env'
    run([sys.executable, '-m', 'venv', '--without-pip', str(env)])
    python = env / 'bin' / 'python'
    run([sys.executable, '-m', 'pip', '--python', str(python), 'install', '-q', '--no-deps', '--no-index', str(wheel)])
    site = run([str(python), '-c', 'import sysconfig; print(sysconfig.get_paths()["purelib"])']).strip()
    with open(os.path.join(site, 'promptkit_test_stack.pth'), 'w') as f:  # after the install: pip saw none of it
        f.write(sysconfig.get_paths()['purelib'] + '\n')

    work = tmp_path / 'elsewhere'
    work.mkdir()
    assert 'usage' in run([str(env / 'bin' / 'promptkit-infer'), '--help'], cwd=work)
    for script in ('promptkit-train', 'promptkit-test'):
        assert script in scripts
        assert 'usage' in run([str(env / 'bin' / script), '--help'], cwd=work)
    (work / 'mine.py').write_text("_base_ = 'promptkit::apt/videomae_demo.py'\n"
                                  "model = dict(cls_head=dict(num_classes=7))\n")
    check = f"""
import os, promptkit
from mmengine.config import Config
from promptkit.config_files import resolve_config
assert promptkit.__file__.startswith({str(site)!r}), promptkit.__file__
path = resolve_config('promptkit::apt/videomae_ssv2.py')
assert path.startswith({str(site)!r}) and os.path.isfile(path), path
assert Config.fromfile(path).model.cls_head.num_classes == 174
cfg = Config.fromfile('mine.py')
assert cfg.model.cls_head.num_classes == 7 and cfg.model.backbone.prompt.type == 'AttentionPrompt'
print('ok')
"""
    assert run([str(python), '-c', check], cwd=work).strip().endswith('ok')
