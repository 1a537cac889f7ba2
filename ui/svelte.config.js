// Forms and keyed views copy their props once on purpose (an edit form starts from the task it
// was opened for; a view is re-created when its key changes), so that warning is not useful here.
export default {
  compilerOptions: {
    warningFilter: (w) => w.code !== 'state_referenced_locally',
  },
};
