/** `files`: file-level restore from a generation's disks (libguestfs on the generation's NBD export). */
export { type FilesListResult, type FilesLsResult, type FileEntry, listGenerationFilesystems, listPath } from '../jobs/files-list.js';
export { type FindResult, type GenerationsSpec, findFiles, parseGenerationsSpec } from '../jobs/files-find.js';
export { type GetResult, getFiles } from '../jobs/files-get.js';
export { type MountedGeneration, mountGeneration } from '../jobs/files-mount.js';
export { type ReadFileResult, readGenerationFile } from '../jobs/files-read.js';
