"""The shipped Semantic Shift Benchmark lists and their OSR protocols."""
import json
import shutil

import pytest

from gradmix_plugin.datasets import (
    SSB_DIFFICULTIES,
    DigitsDataset,
    OSRDataset,
    get_osr_protocol,
    get_osr_split,
    load_ssb_split,
    ssb,
)

# (classes, known, easy, medium + hard), as published.
SIZES = dict(cub=(200, 100, 32, 68), aircraft=(100, 50, 20, 30),
             scars=(196, 98, 76, 22))


def _published(name):
    with open(f'{ssb.SPLIT_DIR}/{name}_ssb_splits.json') as f:
        return json.load(f)


def test_shipped_lists_have_the_published_sizes():
    assert SSB_DIFFICULTIES == ('easy', 'hard')
    for name, (num_classes, *sizes) in SIZES.items():
        known, unknown = load_ssb_split(name)
        assert [len(known), len(unknown['easy']), len(unknown['hard'])
                ] == sizes, name
        everything = known + unknown['easy'] + unknown['hard']
        assert sorted(everything) == list(range(num_classes)), name


def test_hard_folds_medium_into_hard_and_known_keeps_its_order():
    for name in SIZES:
        published = _published(name)
        graded = published['unknown_classes']
        known, unknown = load_ssb_split(name)
        assert known == published['known_classes']
        assert unknown['easy'] == graded['Easy']
        assert sorted(unknown['hard']) == sorted(graded['Medium'] +
                                                 graded['Hard'])
    # A few published values: label 0 of each dataset.
    assert [load_ssb_split(n)[0][0] for n in SIZES] == [150, 0, 1]


def test_protocols_select_the_unknown_classes_by_difficulty():
    for name in SIZES:
        known, unknown = load_ssb_split(name)
        for difficulty in SSB_DIFFICULTIES:
            assert get_osr_split(name, difficulty) == (
                known, unknown[difficulty])
        protocol = get_osr_protocol(name)
        assert protocol.num_known_dataset_classes == SIZES[name][0]
        # The unknown classes are of the same dataset.
        assert protocol.num_unknown_dataset_classes is None


@pytest.mark.parametrize('split', ['medium', 'Easy', 0, None])
def test_an_unknown_difficulty_is_refused_with_the_valid_ones(split):
    with pytest.raises(ValueError,
                       match=rf"{split!r} for protocol 'cub' is not one of "
                       r"\('easy', 'hard'\)"):
        get_osr_split('cub', split)
    with pytest.raises(ValueError, match='not one of'):
        OSRDataset(DigitsDataset(), protocol='cub', split=split)


def test_numbered_protocols_keep_their_split_indices():
    assert get_osr_split('cifar10', 2)[0] == [1, 5, 7, 3, 9, 4]
    with pytest.raises(ValueError, match="'easy' for protocol 'cifar10' is "
                       r'outside 0..4'):
        get_osr_split('cifar10', 'easy')


def test_a_dataset_without_the_listed_classes_is_refused():
    """The digits have 10 classes; the CUB lists name 200."""
    with pytest.raises(ValueError,
                       match="'cub' refers to a dataset with 200 classes, "
                       'but .*DigitsDataset.* has 10'):
        OSRDataset(DigitsDataset(), protocol='cub', split='hard')


def test_broken_or_missing_package_data_is_reported(tmp_path, monkeypatch):
    shipped = f'{ssb.SPLIT_DIR}/cub_ssb_splits.json'
    monkeypatch.setattr(ssb, 'SPLIT_DIR', str(tmp_path))
    with pytest.raises(FileNotFoundError, match='cub_ssb_splits.json.*'
                       'reinstall'):
        load_ssb_split('cub')
    shutil.copy(shipped, tmp_path)
    assert len(load_ssb_split('cub')[0]) == 100
    lists = json.loads((tmp_path / 'cub_ssb_splits.json').read_text())
    lists['unknown_classes']['Easy'][0] = lists['known_classes'][0]
    (tmp_path / 'cub_ssb_splits.json').write_text(json.dumps(lists))
    with pytest.raises(ValueError, match='200 classes .* exactly once'):
        load_ssb_split('cub')
    with pytest.raises(ValueError, match="'cars'.*'aircraft', 'cub', "
                       "'scars'"):
        load_ssb_split('cars')
