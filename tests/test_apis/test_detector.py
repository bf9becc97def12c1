"""OSRDetector: threshold, save / load without pickled code, refusals."""
import numpy as np
import pytest
import torch

from gradmix_plugin.apis import (
    DetectorFileError,
    DetectorMismatchError,
    OSRDetector,
    threshold_at_tpr,
)
from gradmix_plugin.evaluation import class_knn_scores, knn_scores


def _clusters(num_classes=3, per_class=40, dim=8, seed=0):
    """Known samples around one direction per class."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(num_classes, dim)) * 3
    labels = np.repeat(np.arange(num_classes), per_class)
    feats = centres[labels] + rng.normal(size=(labels.size, dim))
    return feats.astype(np.float32), labels


def test_threshold_keeps_the_target_fraction():
    scores = np.arange(100, dtype=float)
    threshold, achieved = threshold_at_tpr(scores, 0.95)
    assert threshold == 5.0 and achieved == 0.95
    threshold, achieved = threshold_at_tpr(np.arange(76.0), 0.95)
    assert achieved >= 0.95 and np.mean(np.arange(76.0) >= threshold) == \
        achieved
    with pytest.raises(ValueError, match=r'must lie in \(0, 1\], got 95'):
        threshold_at_tpr(scores, 95)


def test_feature_the_model_lacks_is_named():
    from gradmix_plugin.apis.detector import bank_vectors
    with pytest.raises(ValueError,
                       match=r"feature='both' needs the model outputs "
                       r"\['feats'\]"):
        bank_vectors(dict(embeds=np.zeros((2, 3))), 'both')


def test_class_knn_detector_equals_the_functional_scores(tmp_path):
    feats, labels = _clusters()
    val_feats, val_labels = _clusters(seed=1)
    detector = OSRDetector.from_outputs(
        dict(type='class_knn', k=3),
        dict(embeds=feats, labels=labels), ['a', 'b', 'c'],
        val=dict(embeds=val_feats, labels=val_labels))
    expected, preds = class_knn_scores(val_feats, feats, labels, 3, 3)
    assert detector.threshold_source == 'known_holdout'
    assert detector.achieved_tpr == np.mean(expected >= detector.threshold)
    assert detector.achieved_tpr >= 0.95
    query = np.random.default_rng(2).normal(size=(5, 8)).astype(np.float32)
    out = detector.predict(dict(embeds=query))
    scores, preds = class_knn_scores(query, feats, labels, 3, 3)
    np.testing.assert_allclose(out['osr_score'], scores)
    np.testing.assert_array_equal(out['pred_label'], preds)
    np.testing.assert_array_equal(out['is_unknown'],
                                  scores < detector.threshold)

    path = detector.save(str(tmp_path / 'det.pth'))
    loaded = OSRDetector.load(path)
    assert loaded.classes == ('a', 'b', 'c')
    assert loaded.threshold == detector.threshold
    assert loaded.target_tpr == 0.95
    np.testing.assert_allclose(
        loaded.predict(dict(embeds=query))['osr_score'], scores)


def test_knn_detector_without_logits_predicts_with_class_knn():
    feats, labels = _clusters()
    detector = OSRDetector.from_outputs(
        dict(type='knn', k=5), dict(embeds=feats, labels=labels),
        ['a', 'b', 'c'], threshold=-1.0, class_knn_k=2)
    query = feats[:4] + 0.01
    out = detector.predict(dict(embeds=query))
    np.testing.assert_allclose(out['osr_score'],
                               knn_scores(query, feats, 5))
    np.testing.assert_array_equal(
        out['pred_label'], class_knn_scores(query, feats, labels, 3, 2)[1])
    assert detector.threshold_source == 'given'
    assert detector.target_tpr is None


def test_logit_detector_predicts_from_logits():
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(30, 4)).astype(np.float32)
    detector = OSRDetector.from_outputs(
        'msp', dict(logits=logits, labels=logits.argmax(1)), list('abcd'),
        val=dict(logits=logits[:10], labels=logits[:10].argmax(1)),
        tpr=0.9)
    out = detector.predict(dict(logits=logits))
    probs = torch.softmax(torch.from_numpy(logits).double(), 1).numpy()
    np.testing.assert_allclose(out['osr_score'], probs.max(1))
    np.testing.assert_array_equal(out['pred_label'], logits.argmax(1))


def test_no_holdout_falls_back_to_training_with_a_warning(caplog):
    from mmengine.logging import MMLogger
    feats, labels = _clusters()
    MMLogger.get_instance('mmengine')
    detector = OSRDetector.from_outputs(
        'class_knn', dict(embeds=feats, labels=labels), list('abc'))
    assert detector.threshold_source == 'training'


def test_float16_bank_halves_the_file(tmp_path):
    feats, labels = _clusters(per_class=400, dim=64)
    detector = OSRDetector.from_outputs(
        'class_knn', dict(embeds=feats, labels=labels), list('abc'),
        threshold=0.5)
    full = tmp_path / 'f32.pth'
    half = tmp_path / 'f16.pth'
    detector.save(str(full))
    detector.save(str(half), bank_dtype='float16')
    assert half.stat().st_size < 0.6 * full.stat().st_size
    loaded = OSRDetector.load(str(half))
    np.testing.assert_allclose(
        loaded.train['embeds'], feats.astype(np.float16).astype(np.float32))


def test_load_refuses_another_checkpoint(tmp_path):
    feats, labels = _clusters()
    ckpt = tmp_path / 'a.pth'
    other = tmp_path / 'b.pth'
    ckpt.write_bytes(b'weights a')
    other.write_bytes(b'weights b')
    from gradmix_plugin.utils import file_sha256
    detector = OSRDetector.from_outputs(
        'class_knn', dict(embeds=feats, labels=labels), list('abc'),
        threshold=0.5,
        provenance=dict(checkpoint=str(ckpt),
                        checkpoint_sha256=file_sha256(str(ckpt))))
    path = detector.save(str(tmp_path / 'det.pth'))
    OSRDetector.load(path, checkpoint=str(ckpt))
    with pytest.raises(DetectorMismatchError,
                       match='was built from checkpoint .*a.pth'):
        OSRDetector.load(path, checkpoint=str(other))


def test_load_refuses_another_score(tmp_path):
    feats, labels = _clusters()
    path = OSRDetector.from_outputs(
        'class_knn', dict(embeds=feats, labels=labels), list('abc'),
        threshold=0.5).save(str(tmp_path / 'det.pth'))
    with pytest.raises(DetectorMismatchError,
                       match="uses the score 'class_knn', not the "
                       "requested 'knn'"):
        OSRDetector.load(path, score='knn')


class _Boom:

    def __reduce__(self):
        return (print, ('executed',))


def test_load_executes_no_pickled_code(tmp_path, capsys):
    path = tmp_path / 'evil.pth'
    torch.save(dict(format='gradmix_plugin.OSRDetector', boom=_Boom()),
               str(path))
    with pytest.raises(DetectorFileError, match='not a readable detector'):
        OSRDetector.load(str(path))
    assert 'executed' not in capsys.readouterr().out
    other = tmp_path / 'other.pth'
    torch.save(dict(state_dict={}), str(other))
    with pytest.raises(DetectorFileError, match='not an OSRDetector file'):
        OSRDetector.load(str(other))
    text = tmp_path / 'text.pth'
    text.write_text('hello')
    with pytest.raises(DetectorFileError):
        OSRDetector.load(str(text))
    with pytest.raises(FileNotFoundError, match='detector file not found'):
        OSRDetector.load(str(tmp_path / 'missing.pth'))
