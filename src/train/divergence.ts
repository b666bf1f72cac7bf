/**
 * Training produced a non-finite loss or gradient. The trainer throws this before applying anything of
 * the step, so its state (and every checkpoint written so far) is the last good one.
 */
export class TrainingDiverged extends Error {
  constructor(
    /** The step whose loss or gradient was not finite (counted from 0, as in the metric log). */
    readonly step: number,
    /** The step's loss (itself non-finite when the loss is what diverged). */
    readonly loss: number,
    /** The learning rate in force at that step. */
    readonly lr: number,
    /** What was not finite: 'the loss', or 'the gradient of <parameter>'. */
    readonly what: string,
  ) {
    super(
      `training diverged at step ${step}: ${what} is not finite (loss ${loss}, learning rate ${lr}); ` +
        `lower optimiser.lr (e.g. ${lr / 10}) or warm it up (optimiser.warmupEpochs)`,
    );
    this.name = 'TrainingDiverged';
  }
}
