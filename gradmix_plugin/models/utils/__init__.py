from .bn_stats import frozen_running_stats, repeat_running_stats_update

__all__ = ['frozen_running_stats', 'repeat_running_stats_update']
