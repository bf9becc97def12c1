# Linear probe: Adam, lr 1e-3, cosine per epoch down to lr * 0.8 ** 3
# over 30 epochs.
_base_ = ['./adam_cosine_600e.py']

max_epochs = 30

param_scheduler = dict(end=max_epochs, T_max=max_epochs)

train_cfg = dict(max_epochs=max_epochs, val_interval=10)
