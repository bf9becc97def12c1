"""The OOD provenance names every source with its type, root, subset or
indices and size, and the bank size."""
import json

import numpy as np

from gradmix_plugin.datasets import OODDataset
from gradmix_plugin.evaluation import OSRMetric
from gradmix_plugin.evaluation.provenance import evaluation_provenance


def test_every_source_and_the_bank_are_named():
    def digits(subset, indices=None):
        return dict(type='OSRDataset', protocol='digits', split=0,
                    subset=subset,
                    dataset=dict(type='DigitsDataset', split='test',
                                 indices=indices))

    dataset = OODDataset(
        id_dataset=digits('known'),
        ood_datasets=[
            dict(name='unknown', dataset=digits('unknown')),
            dict(name='few', dataset=dict(
                type='OSRDataset', protocol='digits', split=0,
                subset='unknown',
                dataset=dict(type='DigitsDataset', split='train',
                             indices=[0, 1, 2, 3, 4, 5, 6, 7, 8, 9]))),
        ],
        ood_groups=dict(near=['unknown'], far=['few']))
    metric = OSRMetric(scores=('knn', dict(type='react', name='react80',
                                           percentile=80)))
    metric.set_bank(dict(feats=np.zeros((7, 4))), np.arange(7) % 2)
    record = evaluation_provenance(dataset, metric)
    json.dumps(record)  # JSON-able
    sources = record['test_set']['ood_sources']
    assert [s['name'] for s in sources] == ['unknown', 'few']
    assert sources[0]['type'] == 'OSRDataset'
    assert sources[0]['subset'] == 'unknown'
    assert sources[0]['size'] == len(dataset.ood_datasets[0])
    assert sources[1]['wraps']['indices'] == list(range(10))
    assert record['test_set']['id']['size'] == len(dataset.id_dataset)
    assert record['test_set']['ood_groups'] == dict(near=['unknown'],
                                                    far=['few'])
    assert record['bank_size'] == 7
    assert record['scores']['react80'] == dict(type='react')
