"""The catalog: every profile validates, and every kind of bad input names file, key and what is valid."""
import pytest
import yaml

import actstore
from actstore.catalog import canonical_hash, load_catalog
from actstore.errors import UserError

REPO_CATALOG = actstore.catalog.default_catalog_path()


@pytest.mark.parametrize("profile", ["smoke", "demo", "paper"])
def test_profiles_validate(profile):
    cat = load_catalog(REPO_CATALOG, profile)
    assert cat.profile == profile
    assert all(arch in actstore.ARCHS for arch, _ in cat.models)


def test_profiles_encode_the_study():
    paper, demo, smoke = (load_catalog(REPO_CATALOG, p) for p in ("paper", "demo", "smoke"))
    assert len(paper.models) == 24 and paper["zoo"]["encoder_dim"] == 128 and paper["zoo"]["hidden_dim"] == 512
    assert paper["data"]["source"] != "synthetic"
    assert len(demo.models) == 8 and demo["data"]["source"] == "synthetic"
    assert smoke.models == [("xu_cnn", 0), ("alexnet", 0)]
    assert load_catalog(REPO_CATALOG).profile == "demo"


def test_train_overrides_apply_to_their_arch_alone(tmp_path):
    def mutate(c):
        c["profiles"]["smoke"]["train_overrides"] = {"xu_cnn": {"max_epochs": 7, "optimizer": {"gru": {"lr": 0.5}}}}
    cat = load_catalog(write(tmp_path, mutate), "smoke")
    xu, alex = cat.train_config("xu_cnn"), cat.train_config("alexnet")
    assert xu["max_epochs"] == 7 and xu["optimizer"]["gru"] == {"lr": 0.5, "weight_decay": cat["train"]["optimizer"]["gru"]["weight_decay"]}
    assert xu["optimizer"]["encoder"] == cat["train"]["optimizer"]["encoder"] and xu["batch_size"] == cat["train"]["batch_size"]
    assert alex == cat["train"] and cat["train"]["max_epochs"] != 7


def test_canonical_hash_ignores_key_order():
    assert canonical_hash({"a": 1, "b": [1, 2]}) == canonical_hash({"b": [1, 2], "a": 1})
    assert canonical_hash({"a": 1}) != canonical_hash({"a": 2})


def write(tmp_path, mutate):
    cfg = yaml.safe_load(REPO_CATALOG.read_text())
    mutate(cfg)
    path = tmp_path / "catalog.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


@pytest.mark.parametrize("mutate, profile, message", [
    (lambda c: c["zoo"].update(archs=["vgg16"]), "paper", r"zoo\.archs\[0\]: invalid value 'vgg16'; expected one of xu_cnn"),
    (lambda c: c["train"].update(batch_size="big"), "paper", r"train\.batch_size: invalid value 'big'; expected an integer"),
    (lambda c: c["train"].update(batchsize=3), "paper", r"train\.batchsize: unknown key; valid keys: device, batch_size"),
    (lambda c: c["data"].pop("segments"), "paper", r"data\.segments: missing key"),
    (lambda c: c["data"].update(source="nwb"), "paper", r"data\.source: invalid value 'nwb'; expected one of synthetic"),
    (lambda c: c["profiles"]["smoke"]["zoo"].update(seeds=[0, 0]), "smoke", r"profiles\.smoke\.zoo\.seeds"),
    (lambda c: c["profiles"]["smoke"]["train"].update(lr=1), "smoke", r"profiles\.smoke\.train\.lr: unknown key"),
    (lambda c: c["data"].update(reference_session="nope"), "paper", r"data\.reference_session: 'nope' is not in data\.sessions"),
    (lambda c: None, "tiny", r"profiles: unknown profile 'tiny'; valid: .*smoke"),
    (lambda c: c["train_overrides"].update(vgg16={"max_epochs": 3}), "paper",
     r"train_overrides key: invalid value 'vgg16'; expected one of xu_cnn"),
    (lambda c: c["profiles"]["smoke"].update(train_overrides={"xu_cnn": {"epochs": 3}}), "smoke",
     r"profiles\.smoke\.train_overrides\.xu_cnn\.epochs: unknown key; valid keys: device, batch_size"),
    (lambda c: c["train_overrides"].update(alexnet={"optimizer": {"gru": {"lr": -1}}}), "paper",
     r"train_overrides\.alexnet\.optimizer\.gru\.lr: invalid value -1"),
])
def test_bad_catalog_names_file_and_key(tmp_path, mutate, profile, message):
    path = write(tmp_path, mutate)
    with pytest.raises(UserError, match=message) as err:
        load_catalog(path, profile)
    assert str(err.value).startswith(str(path))
    assert "\n" not in str(err.value)


def test_malformed_yaml_and_missing_file(tmp_path):
    path = tmp_path / "catalog.yaml"
    path.write_text("zoo: [unclosed\n  archs: x\n")
    with pytest.raises(UserError, match=r"catalog\.yaml: line \d+ malformed YAML"):
        load_catalog(path)
    with pytest.raises(UserError, match="file not found"):
        load_catalog(tmp_path / "absent.yaml")
