# Stage 2 of the reference's two-stage recipes: a new Adam optimiser (lr
# 1e-3, no weight decay) and a new cosine schedule over 10 epochs down to
# lr * 0.8 ** 3 (main_supcon_old.py --epochs 10 --cosine True
# --lr_decay_rate 0.8 in temp3.sh / train_cifar.sh). Validation once, at
# the end.
_base_ = ['./adam_cosine_600e.py']

max_epochs = 10

param_scheduler = dict(end=max_epochs, T_max=max_epochs)

train_cfg = dict(max_epochs=max_epochs, val_interval=max_epochs)
