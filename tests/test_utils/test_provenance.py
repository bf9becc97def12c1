"""Provenance records and the refusal of contradicting checkpoints."""
import hashlib

import pytest
from helpers import logged_messages

from gradmix_plugin.utils import (
    ProvenanceMismatchError,
    check_provenance,
    file_sha256,
    recorded_provenance,
)

CURRENT = dict(
    dataset_type='CustomDataset',
    protocol='cifar10',
    split=1,
    known_classes=[1, 2, 3],
    unknown_classes=[0, 4])


def warnings_of(function, *args):
    with logged_messages() as messages:
        function(*args)
    return messages


def test_legacy_checkpoints_are_checked_through_their_dataset_meta():
    """mmengine writes the training set's metainfo; OSRDataset puts the
    protocol, split and class ids there."""
    checkpoint = dict(
        meta=dict(
            dataset_meta=dict(
                protocol='cifar10',
                split=0,
                known_class_ids=(0, 1, 2),
                unknown_class_ids=(3, 4))))
    recorded = recorded_provenance(checkpoint)
    assert recorded == dict(
        protocol='cifar10',
        split=0,
        known_classes=[0, 1, 2],
        unknown_classes=[3, 4])
    with pytest.raises(ProvenanceMismatchError) as err:
        check_provenance(recorded, CURRENT, 'old.pth')
    message = str(err.value)
    assert message.startswith('checkpoint old.pth was trained on other data '
                              'than the config describes: split: 0 in the '
                              'checkpoint, 1 in the config; known_classes: '
                              '[0, 1, 2] in the checkpoint, [1, 2, 3] in the '
                              'config; unknown_classes')
    assert 'dataset_type' not in message  # not recorded: not compared


def test_provenance_written_by_the_hook_wins():
    record = dict(CURRENT, config='a.py')
    checkpoint = dict(
        meta=dict(
            provenance=record,
            dataset_meta=dict(known_class_ids=(9, ), split=4)))
    assert recorded_provenance(checkpoint) == record
    check_provenance(recorded_provenance(checkpoint), CURRENT, 'new.pth')


def test_allow_mismatch_warns_instead():
    recorded = dict(CURRENT, split=3)
    messages = warnings_of(check_provenance, recorded, CURRENT, 'x.pth',
                           True)
    assert any('split: 3 in the checkpoint, 1 in the config' in m and
               '(--allow-mismatch given: going on)' in m for m in messages)


def test_a_checkpoint_without_records_is_reported():
    messages = warnings_of(check_provenance, {}, CURRENT, 'bare.pth')
    assert any('bare.pth records no training data (no meta.provenance or '
               'OSRDataset dataset_meta): its protocol and split cannot be '
               'checked' in m for m in messages)
    assert recorded_provenance(dict(state_dict={})) == {}


def test_file_sha256(tmp_path):
    path = tmp_path / 'blob'
    data = bytes(range(256)) * 5000
    path.write_bytes(data)
    assert file_sha256(str(path), chunk_size=1000) == \
        hashlib.sha256(data).hexdigest()
