"""Management commands given input they cannot use stop with a one-line message and store nothing wrong."""

from __future__ import annotations

import io
import shutil

import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command

from tests.conftest import demo_photos

pytestmark = pytest.mark.django_db


def run(name: str, *args: str) -> str:
    out = io.StringIO()
    call_command(name, *args, stdout=out, stderr=io.StringIO())
    return out.getvalue()


@pytest.fixture
def unreadable_photos(tmp_path):
    """A folder per label whose every photo is unreadable."""
    data = tmp_path / "data"
    for label in ("hat", "shoes"):
        (data / label).mkdir(parents=True)
        (data / label / "broken.jpg").write_bytes(b"not a jpeg")
    return data


@pytest.fixture
def blocked_path(tmp_path):
    """A path under a file, where no folder can be made (as a path mistyped, or a disk gone read-only)."""
    (tmp_path / "a-file").write_text("x")
    return tmp_path / "a-file" / "folder"


def test_training_on_photos_none_of_which_can_be_read_saves_no_head(unreadable_photos, tmp_path):
    with pytest.raises(CommandError, match="No photo could be read to train type"):
        run("train_recognizer", "type", "--data", str(unreadable_photos), "--output", str(tmp_path / "head"))
    assert not (tmp_path / "head").exists()  # nothing replaced a working head


def test_training_into_a_folder_that_cannot_be_written_is_a_message(demo_subset, blocked_path):
    with pytest.raises(CommandError, match="could not write .*folder"):
        run("train_recognizer", "type", "--data", str(demo_subset), "--output", str(blocked_path))


@pytest.mark.parametrize("epochs", ["0", "-1"])
def test_fine_tuning_for_less_than_one_epoch_is_refused(demo_subset, tmp_path, epochs):
    with pytest.raises(CommandError, match="--epochs must be at least 1"):
        run("train_recognizer", "type", "--data", str(demo_subset), "--fine-tune", "--epochs", epochs)


def test_evaluating_a_recognizer_on_photos_none_of_which_can_be_read_is_a_message(unreadable_photos):
    with pytest.raises(CommandError, match="No photo could be read to evaluate on"):
        run("evaluate_recognizer", "type", str(unreadable_photos))


def test_a_labels_csv_that_is_not_utf8_is_a_message(demo_subset, tmp_path):
    labels = tmp_path / "labels.csv"
    labels.write_bytes("path,pattern\nhat/x.jpg,plain\xe9\n".encode("latin-1"))
    with pytest.raises(CommandError, match="is not UTF-8 text"):
        run("evaluate_recognizer", "pattern", str(demo_subset), "--labels", str(labels))


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        ("path,pattern\n{a},plain\n{b},striped\n{a},checked\n", r":4: .* is labelled again \(first on line 2\)"),
        ("path,pattern\n{a},plain,extra\n", ":2: the row does not have the header's 2 columns"),
        ("path,pattern,pattern\n{a},plain,striped\n", "names the column 'pattern' twice"),
    ],
    ids=["photo-twice", "long-row", "column-twice"],
)
def test_a_labels_csv_whose_labels_are_ambiguous_is_a_message(demo_subset, tmp_path, rows, message):
    a, b = (path.relative_to(demo_subset).as_posix() for path in sorted(demo_subset.glob("*/*.jpg"))[:2])
    labels = tmp_path / "labels.csv"
    labels.write_text(rows.format(a=a, b=b))
    with pytest.raises(CommandError, match=message):
        run("evaluate_recognizer", "pattern", str(demo_subset), "--labels", str(labels))


def test_evaluating_on_two_different_folders_at_once_is_refused(demo_subset, tmp_path):
    with pytest.raises(CommandError, match="Two folders given"):
        run("evaluate_recognizer", "type", str(demo_subset), "--data", str(tmp_path))


def test_evaluating_search_says_which_photos_it_left_out_as_unreadable(tmp_path):
    root = tmp_path / "eval"
    for split in ("validation", "train"):
        (root / split / "hat").mkdir(parents=True)
        for number, photo in enumerate(demo_photos(per_type=1)[:2]):
            shutil.copy(photo, root / split / "hat" / f"{number}.jpg")
    (root / "validation" / "hat" / "broken.jpg").write_bytes(b"not a jpeg")
    err = io.StringIO()
    call_command("evaluate_search", str(root), stdout=io.StringIO(), stderr=err)
    assert f"left out 1 unreadable photo(s) of {root / 'validation'}: hat/broken.jpg" in err.getvalue()


def test_evaluating_search_with_queries_none_of_which_can_be_read_is_a_message(tmp_path):
    root = tmp_path / "eval"
    (root / "validation" / "hat").mkdir(parents=True)
    (root / "validation" / "hat" / "broken.jpg").write_bytes(b"not a jpeg")
    (root / "train" / "hat").mkdir(parents=True)
    shutil.copy(demo_photos(per_type=1)[0], root / "train" / "hat" / "a.jpg")
    with pytest.raises(CommandError, match="could be read"):
        run("evaluate_search", str(root))


def test_retag_into_an_index_folder_that_cannot_be_written_is_a_message(tagged_catalog, settings, blocked_path):
    settings.INDEX_DIR = blocked_path
    with pytest.raises(CommandError, match="cannot be written"):
        run("retag", "--force", "--decode-workers", "1")


def test_retag_without_a_model_is_a_message(tagged_catalog, monkeypatch):
    # given: a backbone that cannot be loaded (its weights missing)
    from catalog.management.commands import retag
    from recognition.errors import ModelNotReady

    def weights_missing():
        raise ModelNotReady("backbone weights missing")

    monkeypatch.setattr(retag, "backbone_get", weights_missing)
    with pytest.raises(CommandError, match="backbone weights missing"):
        run("retag", "--force")


def test_setup_demo_with_an_empty_user_name_is_a_message():
    with pytest.raises(CommandError, match="--username must name the admin user"):
        run("setup_demo", "--username", " ")


@pytest.mark.parametrize("username", ["bad user!*", "x" * 151])
def test_setup_demo_with_a_user_name_the_admin_would_refuse_is_a_message(username):
    with pytest.raises(CommandError, match="cannot name a user"):
        run("setup_demo", "--username", username)
    assert not get_user_model().objects.exists()


def test_setup_demo_for_an_existing_user_who_cannot_log_in_leaves_it_and_promises_no_password(monkeypatch):
    # given a shopper's account, not staff (the demo's import is not what this checks)
    bob = get_user_model().objects.create_user(username="bob", password="bobs-own")
    monkeypatch.setattr("catalog.management.commands.setup_demo.call_command", lambda *args, **kwargs: None)
    out, err = io.StringIO(), io.StringIO()
    # when
    call_command("setup_demo", "--username", "bob", stdout=out, stderr=err)
    # then bob is as he was, the demo says so, and it prints no password it did not set
    bob.refresh_from_db()
    assert not bob.is_staff and bob.check_password("bobs-own")
    assert "user 'bob' exists and cannot log in to the admin" in err.getvalue()
    assert "password: 'admin'" not in out.getvalue() and "as an active staff user" in out.getvalue()


def test_a_fine_tune_whose_held_out_folder_is_unusable_fails_before_training_and_keeps_the_backbone(
    demo_subset, tmp_path, settings
):
    # given: the running fine-tuned weights, and a held-out folder with a label that does not exist
    running = tmp_path / "weights" / "tuned.pt"
    running.parent.mkdir()
    running.write_bytes(b"the weights every live head was trained on")
    settings.BACKBONE_TUNED_WEIGHTS = running
    (tmp_path / "held-out" / "jacket").mkdir(parents=True)
    # when
    with pytest.raises(CommandError, match="not labels"):
        run("train_recognizer", "type", "--data", str(demo_subset), "--eval-data", str(tmp_path / "held-out"),
            "--fine-tune", "--epochs", "1", "--output", str(tmp_path / "head"))
    # then: nothing was trained, saved or replaced
    assert running.read_bytes() == b"the weights every live head was trained on"
    assert [path.name for path in running.parent.iterdir()] == ["tuned.pt"]
    assert not (tmp_path / "head").exists()


def test_a_fine_tune_puts_its_backbone_in_place_only_with_the_head_trained_on_it(demo_subset, tmp_path, settings):
    from recognition.backbone import BackboneConfig, backbone_version
    from recognition.recognizers import load_head

    weights = tmp_path / "weights" / "tuned.pt"
    settings.BACKBONE_TUNED_WEIGHTS = weights
    output = run("train_recognizer", "type", "--data", str(demo_subset), "--fine-tune", "--epochs", "1",
                 "--output", str(tmp_path / "head"))
    version = backbone_version(BackboneConfig(tuned_weights=weights))
    assert load_head(tmp_path / "head").backbone_version == version
    assert f"saved fine-tuned backbone {version}" in output
    assert [path.name for path in weights.parent.iterdir()] == ["tuned.pt"]  # no staged file left


def test_a_head_records_the_backbone_it_reads_even_when_this_run_did_not_fine_tune_it(demo_subset, tmp_path):
    from recognition.recognizers import load_metrics
    from recognition.services import backbone_get

    run("train_recognizer", "type", "--data", str(demo_subset), "--output", str(tmp_path / "head"))

    metrics = load_metrics(tmp_path / "head")
    assert (metrics["fine_tuned"], metrics["backbone"]) == (False, backbone_get().version)


@pytest.mark.parametrize("name", ["../../escaped", "type/../pattern", "", "Bad Name!", "fashion", "x" * 51])
def test_training_under_a_name_that_is_no_recognizer_name_is_refused_before_any_work(demo_subset, tmp_path, name):
    # given: the default output is recognition/artifacts/NAME, so "type/../pattern" would overwrite pattern
    with pytest.raises(CommandError, match="cannot name a recognizer|is reserved|at most 50 characters"):
        run("train_recognizer", name, "--data", str(demo_subset))


def test_fine_tuning_stopped_with_ctrl_c_leaves_no_staged_backbone_behind(demo_subset, tmp_path, settings, monkeypatch):
    # given: a fine-tuning run whose tuned backbone is saved, then stopped while its head is refitted
    from recognition.management.commands import train_recognizer

    weights_dir = tmp_path / "weights"
    weights_dir.mkdir()
    settings.BACKBONE_TUNED_WEIGHTS = weights_dir / "tuned.pt"
    monkeypatch.setattr(train_recognizer, "fine_tune", lambda *args, **kwargs: None)  # the training, skipped

    def interrupted(*args, **kwargs):
        assert (weights_dir / ".tuned.pt.new").exists()  # saved, waiting for its head
        raise KeyboardInterrupt

    monkeypatch.setattr(train_recognizer, "embed_files", interrupted)
    # when
    with pytest.raises(KeyboardInterrupt):
        run("train_recognizer", "type", "--data", str(demo_subset), "--fine-tune", "--output", str(tmp_path / "h"))
    # then: nothing is left beside the weights, and no backbone took their place
    assert list(weights_dir.iterdir()) == []


def test_evaluating_the_apis_all_attributes_name_says_it_is_no_recognizer_of_its_own(demo_subset):
    with pytest.raises(CommandError, match="Unknown recognizer 'fashion'") as refusal:
        run("evaluate_recognizer", "fashion", str(demo_subset))
    assert "fashion" not in str(refusal.value).split("live:")[1]  # not offered as a choice it refuses
