# Adam, lr 1e-3, no weight decay; cosine annealing stepped once per epoch
# down to lr * 0.8 ** 3 over 600 epochs (the GradMix reference schedule).
lr = 1e-3
max_epochs = 600

optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='Adam', lr=lr, weight_decay=0.0))

param_scheduler = dict(
    type='CosineAnnealingLR',
    by_epoch=True,
    begin=0,
    end=max_epochs,
    T_max=max_epochs,
    eta_min=lr * 0.8**3)

train_cfg = dict(by_epoch=True, max_epochs=max_epochs, val_interval=50)
val_cfg = dict()
test_cfg = dict()

# The total batch size the learning rate was set for (tools/train.py
# --auto-scale-lr scales lr by the actual total batch size / 256).
auto_scale_lr = dict(base_batch_size=256, enable=False)
