"""The summary reads any score name from the metrics files."""
from gradmix_plugin.evaluation.summary import (
    format_summary,
    group_rows,
    summarize,
)
from gradmix_plugin.registry import SCORES


def test_summary_lists_a_score_it_has_never_heard_of():
    assert 'my_detector' not in SCORES.module_dict
    runs = [{
        'osr/my_detector/auroc': auroc,
        'osr/mls/auroc': 80.0,
        'osr/ood=tin/my_detector/auroc': auroc - 5,
        'osr/accuracy': 90.0
    } for auroc in (70.0, 72.0)]
    groups = {'all': summarize(runs), 'split 0': summarize(runs[:1]),
              'split 1': summarize(runs[1:])}
    text = format_summary(groups)
    assert '| my_detector | all | 71.00 ± 1.41 |' in text
    assert '| my_detector | tin | 66.00 ± 1.41 |' in text
    assert ['split 0', 'my_detector', '70.00'] in group_rows(
        {'split 0': groups['split 0']})
