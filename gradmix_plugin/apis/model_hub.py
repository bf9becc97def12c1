"""The plugin's configs in mmpretrain's model hub."""
import os.path as osp
from typing import Optional

from mmpretrain.apis import ModelHub

#: The repository root: ``model-index.yml`` and ``configs/`` (a source
#: checkout or an editable install).
REPO_ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


def register_model_index(root: Optional[str] = None) -> bool:
    """Register the plugin's ``model-index.yml`` with mmpretrain's
    ``ModelHub``, once.

    Afterwards ``mmpretrain.get_model('gradmix_resnet18_digits',
    pretrained=CKPT)`` builds the config's model and
    ``mmpretrain.list_models('*gradmix*')`` lists the plugin's models.
    Names already in the hub are left alone, so calling it again is
    harmless.

    Args:
        root (str, optional): The folder holding ``model-index.yml`` and
            the ``configs/`` it names. Defaults to the repository root.

    Returns:
        bool: Whether the index was found (a wheel without the configs has
        none).
    """
    root = REPO_ROOT if root is None else root
    index = osp.join(root, 'model-index.yml')
    if not osp.isfile(index):
        return False
    from modelindex.load_model_index import load
    names = [m.name.lower() for m in load(index).models]
    if all(ModelHub.has(name) for name in names):
        return True
    ModelHub.register_model_index(index, config_prefix=root)
    return True
