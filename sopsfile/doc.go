// Package sopsfile decrypts files that SOPS encrypted, with the host's age
// and PGP keys only.
//
// sops' own decrypt package, and every package of the module that handles
// a whole file (the root package's Tree, stores, keyservice, aes), link
// every key source sops knows: AWS, GCP, Azure, Vault and Huawei KMS
// clients, which make fleetd's binary 86 MB instead of 32. This package
// therefore reads the file formats and checks the MAC itself, as sops
// v3 writes and checks them (cmd/sops/common, sops.Tree.Decrypt,
// aes.Cipher, stores/dotenv, stores/json, stores/yaml), and takes from
// sops only the key sources age and pgp, which decrypt the data key.
//
// It must not write plaintext anywhere: callers get it in memory.
package sopsfile
