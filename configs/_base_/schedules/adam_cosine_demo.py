# The demo schedule: the reference optimiser (Adam, lr 1e-3, no weight
# decay, cosine per epoch down to lr * 0.8 ** 3), a few epochs, one
# evaluation at the end.
_base_ = ['./adam_cosine_600e.py']

max_epochs = 10

param_scheduler = dict(end=max_epochs, T_max=max_epochs)

train_cfg = dict(max_epochs=max_epochs, val_interval=max_epochs)
