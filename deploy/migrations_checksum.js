// The shipped migrations' checksum, for the Custom::Migrations resource in serverless.yml: the
// resource changes (and so CloudFormation runs the migrate function) exactly when they change.
// Same normalization as cities/db/migrate.py: CRLF becomes LF before hashing.
const crypto = require("crypto");
const fs = require("fs");
const path = require("path");

module.exports = () => {
  const dir = path.join(__dirname, "..", "cities", "db", "migrations");
  const hash = crypto.createHash("sha256");
  for (const name of fs.readdirSync(dir).filter((n) => n.endsWith(".sql")).sort()) {
    hash.update(`${name}\n`);
    hash.update(fs.readFileSync(path.join(dir, name), "utf8").replace(/\r\n/g, "\n"));
    hash.update("\n");
  }
  return hash.digest("hex");
};
