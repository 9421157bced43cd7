"""The repositories, one module per aggregate; `storage.repo.Repo` holds one of each."""
