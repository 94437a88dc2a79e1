// Sources deployed inline (a CloudFormation ZipFile, at most 4096 characters), read as they are
// in the repository, so the tested module is the deployed one: deploy/kill_switch.py.
const fs = require("fs");
const path = require("path");

module.exports = async () => ({
  killSwitch: fs.readFileSync(path.join(__dirname, "kill_switch.py"), "utf8"),
});
