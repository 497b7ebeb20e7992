"""docs/python_api.md works as written: its Python blocks run, in order, in one namespace."""
import os
import re
import time

DOC = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), 'docs', 'python_api.md')


def test_python_api_doc_runs(tmp_path, monkeypatch):
    with open(DOC) as f:
        blocks = re.findall(r'```python\n(.*?)```', f.read(), flags=re.S)
    assert len(blocks) >= 3, 'the doc lost its code blocks'
    monkeypatch.chdir(tmp_path)  # save_pretrained('my_prompts') writes here
    namespace: dict = {}
    for i, block in enumerate(blocks):
        start = time.perf_counter()
        exec(compile(block, DOC, 'exec'), namespace)
        print(f'block {i}: {time.perf_counter() - start:.1f} s')
    assert os.path.isfile(tmp_path / 'my_prompts' / 'prompts.safetensors')
    assert namespace['original'] is namespace['fresh'] and namespace['loss'].grad_fn is not None
