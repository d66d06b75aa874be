"""Sample sources for tests: a fixed list of samples."""

from rsvlm_zoo.data.sources.base import SampleSource


class ListSource(SampleSource):
    """The given samples, in order."""

    def __init__(self, samples):
        self.samples = samples

    def __len__(self):
        return len(self.samples)

    def __getitem__(self, idx):
        return self.samples[idx]
