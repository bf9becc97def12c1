# The reference's single-stage baseline at demo scale: SupCon + SimCLR
# without GradMix (gamma 1.0, lambda 1.2; the reference's "vanilia"
# CIFAR-10 runs, main_supcon_old.py --method_gama 1.0 --method_lam 1.2,
# train_cifar.sh), the reference's network, 10 epochs on the embedded
# digits. For the CPU experiment of docs/benchmarks.md.
_base_ = ['./ref_digits_stage1_simclr_gradmix_resnet18.py']

model = dict(gamma=1.0, lambda_ssl=1.2, gradmix=None)
