"""The checks of the contract suite, one module per part of the contract.

Each module holds a mixin class of ``test_*`` methods taking the ``contract``
fixture (a :class:`fishpredict.testing.contract.Contract`);
:class:`fishpredict.testing.ContractSuite` combines them. pytest rewrites the
asserts in this package (see ``fishpredict/testing/__init__.py``), so a
failure shows the values compared.
"""
