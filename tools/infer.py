"""Open-set inference: "class X" or "unknown" for new images.

Runs the model and its detector (``tools/build_detector.py``) on image
files and folders, with a progress bar, and writes one row per image:
path, decision (class name or ``unknown``), closed-set class and score,
open-set score and threshold. Optionally draws the decision on every image.

Examples:
    python tools/infer.py configs/gradmix_resnet18_digits.py \
        work_dirs/gradmix_resnet18_digits/epoch_10.pth \
        --detector detector.pth images/ --out preds.csv --show-dir shown
"""
import argparse
import csv
import json
import os
import os.path as osp

from mmengine.config import DictAction
from mmengine.logging import print_log

from gradmix_plugin.apis import OSRInferencer
from gradmix_plugin.utils import read_config
from gradmix_plugin.utils.config_rules import merge_options

#: Columns of the CSV (and keys of the JSON rows).
COLUMNS = ('img_path', 'decision', 'pred_class', 'pred_label', 'pred_score',
           'osr_score', 'threshold', 'is_unknown')


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Classify images as a known class or unknown')
    parser.add_argument('config', help='config file of the model')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument(
        'inputs', nargs='+', help='image files and / or folders of images')
    parser.add_argument(
        '--detector',
        required=True,
        help='detector file of this checkpoint (tools/build_detector.py)')
    parser.add_argument(
        '--out', required=True, help='predictions file, .csv or .json')
    parser.add_argument(
        '--score',
        help='expected score of the detector (refused if it has another)')
    parser.add_argument(
        '--show-dir', help='write every image with its decision here')
    parser.add_argument('--batch-size', type=int, default=64)
    parser.add_argument('--device', default=None, help='e.g. cpu, cuda:0')
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='override settings of the config, as key=value pairs')
    args = parser.parse_args()
    if osp.splitext(args.out)[1].lower() not in ('.csv', '.json'):
        parser.error(f'--out must end in .csv or .json, got {args.out}')
    return args


def write_predictions(rows: list, path: str) -> None:
    """Write the rows as CSV (``COLUMNS``) or JSON (a list of dicts)."""
    directory = osp.dirname(osp.abspath(path))
    os.makedirs(directory, exist_ok=True)
    rows = [{k: row.get(k, '') for k in COLUMNS} for row in rows]
    with open(path, 'w', newline='') as file:
        if path.lower().endswith('.json'):
            json.dump(rows, file, indent=1)
        else:
            writer = csv.DictWriter(file, fieldnames=COLUMNS)
            writer.writeheader()
            writer.writerows(rows)


def main() -> None:
    args = parse_args()
    cfg = merge_options(read_config(args.config), args.cfg_options)
    inferencer = OSRInferencer(
        cfg,
        detector=args.detector,
        pretrained=args.checkpoint,
        device=args.device,
        score=args.score)
    rows = inferencer(
        args.inputs, batch_size=args.batch_size, show_dir=args.show_dir)
    write_predictions(rows, args.out)
    unknown = sum(row['is_unknown'] for row in rows)
    print_log(
        f'{len(rows)} images: {len(rows) - unknown} known, {unknown} '
        f'unknown ({inferencer.detector.summary()}); predictions written to '
        f'{args.out}', logger='current')


if __name__ == '__main__':
    main()
