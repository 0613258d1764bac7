package google

// GoogleMaxRounds is the most rounds Google Workspace accepts for a crypt
// password hash. The connector hashes with sha512crypt.Hash, whose
// default rounds are well below it, so a hash is never refused for cost.
const GoogleMaxRounds = 10000
