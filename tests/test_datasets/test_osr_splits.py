import pytest

from gradmix_plugin.datasets import (
    OSR_PROTOCOLS,
    get_osr_protocol,
    get_osr_split,
)
from gradmix_plugin.datasets.osr_splits import NUM_SPLITS


def test_every_protocol_has_five_splits_of_the_documented_size():
    sizes = dict(
        mnist=(6, None),
        svhn=(6, None),
        cifar10=(6, None),
        cifar_plus10=(4, 10),
        cifar_plus50=(4, 50),
        tinyimagenet=(20, None),
        digits=(6, None))
    # The SSB protocols ('easy' / 'hard'): test_ssb.py.
    assert set(OSR_PROTOCOLS) == set(sizes) | {'cub', 'aircraft', 'scars'}
    for name, (num_known, num_unknown) in sizes.items():
        for split in range(NUM_SPLITS):
            known, unknown = get_osr_split(name, split)
            assert len(known) == len(set(known)) == num_known, name
            if num_unknown is None:
                assert unknown is None, name
            else:
                assert len(unknown) == len(set(unknown)) == num_unknown
        with pytest.raises(ValueError, match='5'):
            get_osr_split(name, NUM_SPLITS)


def test_class_ids_are_inside_the_referenced_datasets():
    for name, protocol in OSR_PROTOCOLS.items():
        for known in protocol.known:
            assert all(0 <= c < protocol.num_known_dataset_classes
                       for c in known), name
        num_unknown = (protocol.num_unknown_dataset_classes
                       or protocol.num_known_dataset_classes)
        for unknown in protocol.unknown or ():
            assert all(0 <= c < num_unknown for c in unknown), name


def test_cifar_plus_unknowns_are_nested_and_digits_reuse_mnist():
    # The CIFAR+10 unknowns are the last 10 of the CIFAR+50 unknowns.
    for split in range(NUM_SPLITS):
        _, plus10 = get_osr_split('cifar_plus10', split)
        _, plus50 = get_osr_split('cifar_plus50', split)
        assert plus50[-10:] == plus10
        assert get_osr_split('cifar_plus10', split)[0] == get_osr_split(
            'cifar_plus50', split)[0]
        assert get_osr_split('digits', split) == get_osr_split(
            'mnist', split)


def test_documented_duplicate_splits():
    """The published lists repeat some known sets; they are kept."""

    def known_set(name, split):
        return set(get_osr_split(name, split)[0])

    assert known_set('cifar10', 0) == known_set('cifar10', 1)
    assert known_set('svhn', 0) == known_set('svhn', 1)
    assert known_set('cifar_plus10', 1) == known_set('cifar_plus10', 2)
    # ... and only those.
    for name in ('mnist', 'svhn', 'cifar10', 'cifar_plus10', 'tinyimagenet'):
        sets = [frozenset(known_set(name, s)) for s in range(NUM_SPLITS)]
        num_duplicates = NUM_SPLITS - len(set(sets))
        assert num_duplicates == (0 if name in ('mnist', 'tinyimagenet')
                                  else 1), name


def test_lookup_errors_name_the_value():
    with pytest.raises(ValueError, match="'cifar100'.*cifar10"):
        get_osr_protocol('cifar100')
    with pytest.raises(ValueError, match="'imagenet'"):
        get_osr_split('imagenet', 0)
    for bad_split in (-1, 5, 1.0, True):
        with pytest.raises(ValueError, match=f'{bad_split!r}.*0..4'):
            get_osr_split('cifar10', bad_split)


def test_lookup_returns_copies():
    known, _ = get_osr_split('cifar10', 0)
    known.append(3)
    assert len(get_osr_split('cifar10', 0)[0]) == 6
