/** The `lorasmith` command line as the GPU check pack bundles it (bin/lorasmith.js runs the same main via tsx). */
import { main } from '../../main/cli/index';

process.exitCode = await main(process.argv.slice(2));
