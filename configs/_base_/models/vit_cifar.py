# A small vision transformer for 32x32 images (patch 4: an 8x8 grid of
# patch tokens and a class token), 6 layers of width 192, 2.7M parameters.
# A recipe replaces its backbone with `backbone=_base_.vit_cifar` and takes
# the attribution layers and feature width from here.
vit_cifar = dict(
    _delete_=True,
    type='VisionTransformer',
    arch=dict(
        embed_dims=192, num_layers=6, num_heads=4, feedforward_channels=384),
    img_size=32,
    patch_size=4,
    drop_path_rate=0.1,
    out_type='cls_token')
vit_cifar_channels = 192
# Patch tokens of layers 4 and 5 of 6 (indices 3, 4): with the class-token
# output the patch tokens of the last layer never reach the logits (zero
# gradient), so the deepest useful layer is the one before it.
vit_cifar_layers = ['backbone.layers.3', 'backbone.layers.4']
