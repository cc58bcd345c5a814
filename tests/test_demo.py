"""The demo page: darts-train --demo and darts-demo write a Space-ready Gradio app; started on localhost and driven in
headless Chromium it shows, for a known image, the top-5 labels the model gives, with the cells drawn beside. What
it cannot show is refused with what to use instead, and nothing is written."""

import json
import os
import shutil
import socket
import subprocess
import sys
import time

import numpy as np
import pytest
from helpers import folder_hash, language_model_arguments, needs_dot, training_arguments
from huggingface_hub import SpaceCard
from PIL import Image
from sklearn.datasets import load_digits

from darts_hub import DartsRNNConfig, NasBench201Config
from darts_hub.demo import APP, write_demo
from darts_hub.models.modeling_darts_search import DartsSearchConfig
from darts_hub.training.train_images import run_training


CHROMIUM, CHROMEDRIVER = shutil.which("chromium"), shutil.which("chromedriver")
needs_chromium = pytest.mark.skipif(
    CHROMIUM is None or CHROMEDRIVER is None,
    reason="needs Chromium and its driver (apt-get install chromium chromium-driver)",
)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A DARTS_V2 network trained briefly on the embedded digits by darts-train, with --demo."""
    folder = tmp_path_factory.mktemp("demo") / "digits-darts"
    settings = dict(genotype="DARTS_V2", epochs=1, init_channels=8, num_cells=3, batch_size=64, seed=0)
    run_training(training_arguments(output_dir=str(folder), max_train_samples=256, demo=True, **settings))
    return folder


def test_the_demo_folder_is_a_gradio_space_for_the_model(trained, tmp_path):
    demo = trained / "demo"
    assert (demo / "app.py").read_text() == APP.read_text()
    settings = json.loads((demo / "demo.json").read_text())
    assert settings["title"] == "digits-darts demo" and settings["model_id"] is None
    assert "DARTS_V2" in settings["description"] and "0, 1, 2, 3, 4, 5, 6, 7, 8, 9" in settings["description"]
    card = SpaceCard.load(demo / "README.md")
    assert (card.data.sdk, card.data.app_file) == ("gradio", "app.py")
    assert "gradio" in (demo / "requirements.txt").read_text().split()
    readme = (trained / "README.md").read_text()
    assert "- `demo/app.py`" in readme and "- `demo/demo.json`" in readme  # the model card lists it
    if shutil.which("dot"):
        assert settings["cells"] == {"normal": "normal.png", "reduction": "reduction.png"}
        assert all(Image.open(demo / name).size[0] > 50 for name in settings["cells"].values())

    # With the model's Hub id, the Space loads it from there.
    write_demo(trained, tmp_path / "space", model_id="you/digits-darts")
    card = SpaceCard.load(tmp_path / "space" / "README.md")
    assert card.data.models == ["you/digits-darts"]
    assert "hf upload --repo-type space you/digits-darts-demo ." in card.text
    assert json.loads((tmp_path / "space" / "demo.json").read_text())["model_id"] == "you/digits-darts"


def free_port() -> int:
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        return server.getsockname()[1]


def start_app(app, port: int) -> subprocess.Popen:
    environment = {**os.environ, "GRADIO_SERVER_PORT": str(port), "GRADIO_ANALYTICS_ENABLED": "False"}
    return subprocess.Popen(
        [sys.executable, str(app)], env=environment, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )


def wait_for(port: int, app: subprocess.Popen, seconds: float = 180) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if app.poll() is not None:
            pytest.fail(f"the app exited: {app.stdout.read()[-3000:]}")
        with socket.socket() as client:
            if client.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.5)
    pytest.fail("the app did not start listening")


@needs_dot
@needs_chromium
def test_the_page_shows_the_models_top5_labels_for_a_known_image_and_the_cells(trained, tmp_path):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait
    from transformers import pipeline

    digit = load_digits().images[0]  # a 0
    image = tmp_path / "digit.png"
    Image.fromarray((digit * 255 / 16).astype(np.uint8)).save(image)
    expected = pipeline("image-classification", model=str(trained), trust_remote_code=True)(str(image), top_k=5)

    port = free_port()
    app = start_app(trained / "demo" / "app.py", port)
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu"):
        options.add_argument(argument)
    browser = None
    try:
        wait_for(port, app)
        browser = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
        browser.get(f"http://127.0.0.1:{port}/")
        wait = WebDriverWait(browser, 120)
        wait.until(lambda page: page.find_element(By.CSS_SELECTOR, "#image input[type=file]")).send_keys(str(image))
        wait.until(lambda page: page.find_elements(By.CSS_SELECTOR, "#image img"))  # the upload is shown
        browser.find_element(By.CSS_SELECTOR, "#classify").click()
        meters = wait.until(lambda page: page.find_elements(By.CSS_SELECTOR, "#labels meter"))
        shown = [(meter.get_attribute("aria-label"), float(meter.get_attribute("value"))) for meter in meters]
        assert shown == [(p["label"], pytest.approx(p["score"], abs=1e-6)) for p in expected]
        drawings = [img.get_attribute("src") for img in browser.find_elements(By.TAG_NAME, "img")]
        assert any("normal.png" in src for src in drawings) and any("reduction.png" in src for src in drawings)
    finally:
        if browser is not None:
            browser.quit()
        app.terminate()
        app.wait(30)


def test_an_app_with_no_model_beside_it_and_no_hub_id_says_what_to_do(trained, tmp_path):
    shutil.copytree(trained / "demo", tmp_path / "demo")
    result = subprocess.run([sys.executable, str(tmp_path / "demo" / "app.py")], capture_output=True, text=True)
    assert result.returncode != 0 and "darts-demo --hub_model_id" in result.stderr


def test_what_the_demo_cannot_show_is_refused_and_nothing_is_written(trained, tmp_path):
    DartsRNNConfig(vocab_size=10, hidden_size=8).save_pretrained(tmp_path / "language-model")
    DartsSearchConfig().save_pretrained(tmp_path / "supernet")
    (tmp_path / "empty").mkdir()
    before = folder_hash(tmp_path)
    with pytest.raises(ValueError, match=r'language model.*pipeline\("text-generation"'):
        write_demo(tmp_path / "language-model")
    with pytest.raises(ValueError, match="search supernet.*train its genotype first"):
        write_demo(tmp_path / "supernet")
    with pytest.raises(FileNotFoundError, match="no config.json"):
        write_demo(tmp_path / "empty")
    assert folder_hash(tmp_path) == before and sorted(p.name for p in tmp_path.iterdir()) == sorted(
        ["language-model", "supernet", "empty"]
    )
    demo_before = folder_hash(trained / "demo")
    with pytest.raises(FileExistsError, match="--overwrite"):
        write_demo(trained)
    assert folder_hash(trained / "demo") == demo_before
    with pytest.raises(ValueError, match="--demo writes a demo page for image classifiers"):
        language_model_arguments(output_dir=str(tmp_path / "lm"), demo=True)


def test_darts_demo_writes_the_demo_of_a_model_folder(trained, tmp_path, run_script):
    output = run_script(
        "demo", "--model_name_or_path", trained, "--hub_model_id", "you/digits", "--output_dir", tmp_path / "d"
    )
    assert "python" in output and (tmp_path / "d" / "app.py").is_file()
    assert [p.name for p in tmp_path.iterdir()] == ["d"]  # no staging folder left
    run_script("demo", "--model_name_or_path", trained, "--output_dir", tmp_path / "d", "--overwrite")
    assert json.loads((tmp_path / "d" / "demo.json").read_text())["model_id"] is None


def test_a_nas_bench_201_network_gets_its_cell_drawn_and_named(tmp_path):
    cell = "|nor_conv_3x3~0|+|nor_conv_3x3~0|skip_connect~1|+|none~0|avg_pool_3x3~1|nor_conv_1x1~2|"
    NasBench201Config(genotype=cell, num_labels=3).save_pretrained(tmp_path / "nb201")
    settings = json.loads((write_demo(tmp_path / "nb201") / "demo.json").read_text())
    assert f"NAS-Bench-201 network (cell `{cell}`)" in settings["description"]
    if shutil.which("dot"):
        assert settings["cells"] == {"cell": "cell.png"}
        assert (tmp_path / "nb201" / "demo" / "cell.png").is_file()


def test_without_dot_the_demo_has_no_drawings_and_says_why(tmp_path, monkeypatch, caplog):
    import graphviz

    def missing(*args, **kwargs):
        raise graphviz.ExecutableNotFound(["dot"])

    monkeypatch.setattr(graphviz.Digraph, "pipe", missing)
    NasBench201Config(num_labels=3).save_pretrained(tmp_path / "nb201")
    demo = write_demo(tmp_path / "nb201")
    assert json.loads((demo / "demo.json").read_text())["cells"] == {}
    assert sorted(p.name for p in demo.iterdir()) == ["README.md", "app.py", "demo.json", "requirements.txt"]
    assert "No drawings of the cells for the demo page" in caplog.text and "apt-get install graphviz" in caplog.text
