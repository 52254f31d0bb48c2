from __future__ import annotations

import hashlib
from pathlib import Path

from pvdm.hashing import file_digest, sha256_file


def test_chunked_digests_equal_the_digest_of_the_whole_file(tmp_path: Path) -> None:
    data = bytes(range(256)) * 5000  # over one read chunk
    path = tmp_path / "blob"
    path.write_bytes(data)
    assert sha256_file(path) == hashlib.sha256(data).hexdigest()
    assert file_digest(str(path), "md5") == hashlib.md5(data).hexdigest()
