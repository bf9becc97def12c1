from .osr_data_preprocessor import OSRDataPreprocessor

__all__ = ['OSRDataPreprocessor']
