using System.Runtime.InteropServices;

namespace TcmuSharedVolume.Interop;

public static unsafe partial class LibRados
{
    /// <summary>The next xattr: <paramref name="name"/> is NUL-terminated, <paramref name="value"/>
    /// is <paramref name="length"/> bytes; both belong to the iterator. A null name ends the list.</summary>
    [LibraryImport(Library, EntryPoint = "rados_getxattrs_next")]
    public static partial int rados_getxattrs_next(nint iterator, byte** name, byte** value, nuint* length);
}
