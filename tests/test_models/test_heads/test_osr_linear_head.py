import torch
from mmpretrain.structures import DataSample

import gradmix_plugin  # noqa: F401
from gradmix_plugin.models.heads import OSRLinearClsHead

NUM_CLASSES = 3


def test_predict_adds_feats_and_logits_end_to_end(build_classifier):
    model = build_classifier(NUM_CLASSES, head_type='OSRLinearClsHead').eval()
    assert isinstance(model.head, OSRLinearClsHead)
    inputs = [torch.randint(0, 256, (3, 16, 16), dtype=torch.uint8)
              for _ in range(4)]
    labels = [0, 2, -1, 1]  # unknown samples (-1) pass through at test time
    batch = dict(
        inputs=inputs,
        data_samples=[DataSample().set_gt_label(lb) for lb in labels])
    with torch.no_grad():
        outputs = model.test_step(batch)
        processed = model.data_preprocessor(batch, False)
        expected_feats = model.extract_feat(processed['inputs'])[-1]
        expected_logits = model.head.fc(expected_feats)
    assert len(outputs) == 4
    for i, sample in enumerate(outputs):
        assert sample.feats.shape == (64, )
        assert sample.logits.shape == (NUM_CLASSES, )
        torch.testing.assert_close(sample.feats, expected_feats[i])
        torch.testing.assert_close(sample.logits, expected_logits[i])
        torch.testing.assert_close(sample.pred_score,
                                   torch.softmax(expected_logits[i], 0))
        assert sample.pred_label.item() == expected_logits[i].argmax().item()
        assert sample.gt_label.item() == labels[i]


def test_training_loss_is_the_linear_head_loss(build_classifier):
    model = build_classifier(NUM_CLASSES, head_type='OSRLinearClsHead')
    feats = (torch.randn(4, 64), )
    samples = [DataSample().set_gt_label(i % NUM_CLASSES) for i in range(4)]
    loss = model.head.loss(feats, samples)['loss']
    expected = torch.nn.functional.cross_entropy(
        model.head.fc(feats[0]), torch.tensor([0, 1, 2, 0]))
    torch.testing.assert_close(loss, expected)
